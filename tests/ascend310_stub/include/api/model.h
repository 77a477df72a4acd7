// Test double of mindspore/include/api/model.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_MODEL_H_
#define STUB_MINDSPORE_INCLUDE_API_MODEL_H_
#include <memory>
#include <vector>

#include "include/api/cell.h"
#include "include/api/context.h"
#include "include/api/graph.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace mindspore {
class ModelImpl;
class TrainCfg;

// Copyable like the real one: copies share the built model (impl_).
class Model {
 public:
  Model();
  ~Model();

  Status Build(GraphCell graph, const std::shared_ptr<Context> &model_context = nullptr,
               const std::shared_ptr<TrainCfg> &train_cfg = nullptr);
  Status Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs,
                 const MSKernelCallBack &before = nullptr, const MSKernelCallBack &after = nullptr);
  std::vector<MSTensor> GetInputs();

 private:
  friend class Serialization;
  std::shared_ptr<ModelImpl> impl_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_MODEL_H_
