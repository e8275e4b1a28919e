// cictl: the command line client of the CI dispatcher.
#include <iostream>

#include "ctl/ctl.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return ci::run_ctl(args, std::cout, std::cerr);
}
