// Test double of mindspore/include/api/model.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_MODEL_H_
#define STUB_MINDSPORE_INCLUDE_API_MODEL_H_
#include <memory>
#include <vector>

#include "include/api/cell.h"
#include "include/api/context.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace mindspore {
class Model {
 public:
  Status Build(GraphCell graph, const std::shared_ptr<Context> &model_context = nullptr);
  Status Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs);
  std::vector<MSTensor> GetInputs();

 private:
  bool built_ = false;
  std::vector<int64_t> input_shape_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_MODEL_H_
