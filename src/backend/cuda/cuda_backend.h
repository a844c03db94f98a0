// CUDA backend. So far: device discovery only; kernels arrive with the CUDA issue.
#pragma once

#include <string>

namespace kvserve {

// Name and memory of device 0, or the CUDA runtime's error text.
std::string DescribeCudaDevice();

}  // namespace kvserve
