// analysis/stb_image_write.cpp — stb_image_write's implementation, compiled into Kiln (the header
// is Debian's libstb-dev), for the same reason data/stb_image.cpp compiles stb_image's: no
// prebuilt libstb is linked.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
