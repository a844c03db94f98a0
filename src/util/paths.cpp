#include "util/paths.h"

#include <cstdlib>

namespace kvserve {

std::string SharedPath(const std::string& relative) {
  if (const char* dir = std::getenv("KVSERVE_SHARED_DIR"); dir != nullptr && *dir) return std::string(dir) + "/" + relative;
  return std::string(KVSERVE_SOURCE_DIR) + "/../shared/" + relative;
}

}  // namespace kvserve
