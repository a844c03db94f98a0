// Locating the project's fixture data (../shared beside the checkout).
#pragma once

#include <string>

namespace kvserve {

// Absolute path of `relative` under the shared fixture folder, resolved from the
// source tree (not the working directory). Overridable with $KVSERVE_SHARED_DIR
// (used on the device machine, where ../shared is absent).
std::string SharedPath(const std::string& relative);

}  // namespace kvserve
