// The one Catch2 main of every Kiln test executable.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
