// The sub-command registry declared in command.h. A function-local static, so the Registrar
// objects of the cmd_*.cpp files can fill it during static initialization in any order.
#include "tools/cli/command.h"

namespace selfsup::cli {

std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}

}  // namespace selfsup::cli
