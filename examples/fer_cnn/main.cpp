// examples/fer_cnn/main.cpp — fer_cnn: train, evaluate and use the facial-expression CNN of the
// report with Kiln. A thin dispatcher: each subcommand is one cmd_<name>.cpp that registers itself
// (fer_cnn.h shows how to add one).
//
//   fer_cnn train                       # synthetic faces, the CPU default (prints what it uses)
//   fer_cnn train --data fer2013.csv --preset report --device cuda --epochs 50
//   fer_cnn eval --checkpoint runs/fer_cnn/best.safetensors --data fer2013.csv
//   fer_cnn predict --checkpoint runs/fer_cnn/best.safetensors face.png
#include <cstdio>
#include <exception>
#include <new>

#include "core/error.h"
#include "examples/fer_cnn/fer_cnn.h"

int main(int argc, char** argv) {
  CLI::App app{"fer_cnn — the facial-expression classifier of the report, trained with Kiln"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, const fer::Command*>> subs;
  for (const fer::Command& c : fer::commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    c.setup(*sub);
    subs.push_back({sub, &c});
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    for (auto& [sub, cmd] : subs)
      if (sub->parsed()) return cmd->run();
  } catch (const fer::UsageError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 2;
  } catch (const kiln::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    // Kiln's own allocations say what and how much (kiln::Error above); this is the rest
    // (vectors of data or decoded images, strings).
    std::fflush(stdout);
    std::fprintf(stderr,
                 "\nerror: out of memory (std::bad_alloc): the data set or the model does not fit "
                 "in this machine's memory; use less data, a smaller --preset or --width, or a "
                 "smaller --batch-size\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  }
  return 1;
}
