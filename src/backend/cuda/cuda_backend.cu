#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/cuda_backend.h"

namespace kvserve {

std::string DescribeCudaDevice() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("CUDA unavailable: ") + cudaGetErrorString(err);
  if (count == 0) return "no CUDA device";
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  return std::string(prop.name) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB";
}

}  // namespace kvserve
