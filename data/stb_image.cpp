// data/stb_image.cpp — stb_image's implementation, compiled into Kiln.
//
// The header is Debian's (libstb-dev, /usr/include/stb); compiling its implementation here rather
// than linking Debian's prebuilt libstb means the decoder is built with Kiln's own flags, so the
// sanitizers and the fuzzer (tests/fuzz) see inside it. data/image.cpp checks an image's declared
// size (stbi_info_from_memory) before it decodes.
//
// Only the formats Kiln reads (png, jpg, bmp: data/image_folder.h) are compiled in: every other
// decoder would be attack surface that no data set needs.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#include <stb/stb_image.h>
