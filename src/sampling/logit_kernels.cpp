#include "sampling/logit_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "sampling/logit_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace kvserve {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

MaxResult MaxImpl(const float* x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto vmax = hn::Set(d, -std::numeric_limits<float>::infinity());
  auto nan = hn::Zero(d);  // all-ones lanes where a NaN was seen
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(d, x + i);
    // Not(Eq), not Ne: some targets compare Ne as ordered, false for NaN.
    nan = hn::Or(nan, hn::VecFromMask(d, hn::Not(hn::Eq(v, v))));
    vmax = hn::Max(vmax, v);
  }
  MaxResult r{hn::GetLane(hn::MaxOfLanes(d, vmax)), !hn::AllFalse(d, hn::MaskFromVec(nan))};
  for (; i < n; ++i) {
    if (x[i] != x[i]) r.has_nan = true;
    r.max = std::max(r.max, x[i]);
  }
  return r;
}

void BlockMaximaImpl(const float* x, size_t n, float* out) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  for (size_t b = 0; b * kMaxBlock < n; ++b) {
    const size_t begin = b * kMaxBlock, end = std::min(n, begin + kMaxBlock);
    auto vmax = hn::Set(d, -std::numeric_limits<float>::infinity());
    size_t i = begin;
    for (; i + lanes <= end; i += lanes) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
    float m = hn::GetLane(hn::MaxOfLanes(d, vmax));
    for (; i < end; ++i) m = std::max(m, x[i]);
    out[b] = m;
  }
}

template <class D, class V>
HWY_INLINE V Weights(D d, V x, V scale, V offset) {
  const auto arg = hn::Sub(hn::Mul(x, scale), offset);
  const auto lo = hn::Set(d, kMinExpArg);
  return hn::IfThenElseZero(hn::Ge(arg, lo), hn::Exp(d, hn::Max(arg, lo)));
}

double ExpWeightsImpl(const float* x, size_t n, float scale, float offset, float* out, double* block_sums) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vs = hn::Set(d, scale);
  const auto vo = hn::Set(d, offset);
  double total = 0.0;
  for (size_t b = 0; b * kExpBlock < n; ++b) {
    const size_t begin = b * kExpBlock, end = std::min(n, begin + kExpBlock);
    auto acc = hn::Zero(d);
    size_t i = begin;
    for (; i + lanes <= end; i += lanes) {
      const auto w = Weights(d, hn::LoadU(d, x + i), vs, vo);
      if (out) hn::StoreU(w, d, out + i);
      acc = hn::Add(acc, w);
    }
    double sum = hn::GetLane(hn::SumOfLanes(d, acc));
    for (; i < end; ++i) {
      const float w = ExpWeight(x[i], scale, offset);
      if (out) out[i] = w;
      sum += w;
    }
    if (block_sums) block_sums[b] = sum;
    total += sum;
  }
  return total;
}

}  // namespace HWY_NAMESPACE
}  // namespace kvserve
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvserve {

HWY_EXPORT(MaxImpl);
HWY_EXPORT(ExpWeightsImpl);
HWY_EXPORT(BlockMaximaImpl);

void BlockMaxima(std::span<const float> x, std::vector<float>& out) {
  out.resize((x.size() + kMaxBlock - 1) / kMaxBlock);
  HWY_DYNAMIC_DISPATCH(BlockMaximaImpl)(x.data(), x.size(), out.data());
}

MaxResult MaxLogit(std::span<const float> x) { return HWY_DYNAMIC_DISPATCH(MaxImpl)(x.data(), x.size()); }

double SumExp(std::span<const float> x, float scale, float offset) {
  return HWY_DYNAMIC_DISPATCH(ExpWeightsImpl)(x.data(), x.size(), scale, offset, nullptr, nullptr);
}

double ExpWeights(std::span<const float> x, float scale, float offset, std::span<float> out,
                  std::vector<double>& block_sums) {
  block_sums.resize((x.size() + kExpBlock - 1) / kExpBlock);
  return HWY_DYNAMIC_DISPATCH(ExpWeightsImpl)(x.data(), x.size(), scale, offset, out.data(), block_sums.data());
}

float ExpWeight(float x, float scale, float offset) {
  const float arg = x * scale - offset;
  return arg >= kMinExpArg ? std::exp(arg) : 0.0f;
}

}  // namespace kvserve
#endif  // HWY_ONCE
