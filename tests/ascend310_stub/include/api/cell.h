// Test double of mindspore/include/api/cell.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_CELL_H_
#define STUB_MINDSPORE_INCLUDE_API_CELL_H_
#include <cstdint>
#include <memory>
#include <vector>

#include "include/api/graph.h"
#include "include/api/status.h"
#include "include/api/types.h"
namespace mindspore {
class Context;

class CellBase {
 public:
  CellBase() = default;
  virtual ~CellBase() = default;
  virtual std::shared_ptr<CellBase> Clone() const = 0;
  virtual Status Run(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs) { return kSuccess; }
};

template <class T>
class Cell : public CellBase {
 public:
  virtual ~Cell() = default;
  std::shared_ptr<CellBase> Clone() const override { return std::make_shared<T>(static_cast<const T &>(*this)); }
};

// Polymorphic, like the real one: its vtable lives in the library (Run is its first out-of-line virtual).
class GraphCell final : public Cell<GraphCell> {
 public:
  class GraphImpl;

  GraphCell() = default;
  ~GraphCell() override = default;
  explicit GraphCell(const Graph &graph);
  explicit GraphCell(Graph &&graph);
  explicit GraphCell(const std::shared_ptr<Graph> &graph);

  const std::shared_ptr<Graph> &GetGraph() const { return graph_; }
  Status Run(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs) override;

 private:
  friend class Model;
  std::shared_ptr<Graph> graph_;
  std::shared_ptr<GraphImpl> executor_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_CELL_H_
