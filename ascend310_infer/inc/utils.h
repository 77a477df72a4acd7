/**
 * File and argument helpers of the CenterNet Ascend 310 inference app.
 *
 * Input files are the float32 .bin tensors written by preprocess.py; each model output i of
 * input <name>.bin is written to <output_path>/<name>_<i>.bin (raw bytes, the tensor's layout).
 */
#ifndef CENTERNET_ASCEND310_INFER_UTILS_H_
#define CENTERNET_ASCEND310_INFER_UTILS_H_

#include <string>
#include <vector>

#include "include/api/types.h"

struct InferOptions {
  std::string mindir_path;
  std::string input_path;
  std::string output_path = "./result_Files";
  std::string time_path = "./time_Result";
  std::string precision_mode = "allow_fp32_to_fp16";
  std::string op_select_impl_mode = "high_precision";
  int device_id = 0;
};

// Parses --key=value arguments into |options|; returns false with |error| set on a bad or missing one.
bool ParseArgs(int argc, char **argv, InferOptions *options, std::string *error);
std::string Usage(const std::string &program);

// Regular files of |dir| ending in |suffix|, sorted by name; false with |error| when |dir| cannot be read.
bool ListFiles(const std::string &dir, const std::string &suffix, std::vector<std::string> *files,
               std::string *error);
// File name without folder and extension: "/a/b/397133.bin" -> "397133".
std::string FileStem(const std::string &path);
// Creates |path| and its missing parents; false when that fails.
bool MakeDirs(const std::string &path);
// Whole file as a uint8 tensor named after the file; an empty tensor (DataSize() == 0) when unreadable.
mindspore::MSTensor ReadFileToTensor(const std::string &file);
// Writes output i to <dir>/<stem>_<i>.bin (through a temporary name); false with |error| on failure.
bool WriteResult(const std::string &dir, const std::string &stem, const std::vector<mindspore::MSTensor> &outputs,
                 std::string *error);

#endif  // CENTERNET_ASCEND310_INFER_UTILS_H_
