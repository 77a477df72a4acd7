/**
 * File and argument helpers of the CenterNet Ascend 310 inference app (see inc/utils.h).
 */
#include "inc/utils.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

using mindspore::DataType;
using mindspore::MSTensor;

namespace {
bool IsDir(const std::string &path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool EndsWith(const std::string &text, const std::string &suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool ParseInt(const std::string &text, int *value) {
  if (text.empty()) {
    return false;
  }
  char *end = nullptr;
  errno = 0;
  long parsed = std::strtol(text.c_str(), &end, 10);  // NOLINT(runtime/int)
  if (errno != 0 || *end != '\0' || parsed < 0 || parsed > 1024) {
    return false;
  }
  *value = static_cast<int>(parsed);
  return true;
}
}  // namespace

std::string Usage(const std::string &program) {
  return "usage: " + program +
         " --mindir_path=MODEL.mindir --input_path=DIR [--output_path=./result_Files] [--device_id=0]\n"
         "       [--time_path=./time_Result] [--precision_mode=allow_fp32_to_fp16]"
         " [--op_select_impl_mode=high_precision]\n"
         "  runs the model on every DIR/<name>.bin (float32, the model input's shape) and writes\n"
         "  each output i to <output_path>/<name>_<i>.bin";
}

bool ParseArgs(int argc, char **argv, InferOptions *options, std::string *error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg(argv[i]);
    size_t eq = arg.find('=');
    if (arg.compare(0, 2, "--") != 0 || eq == std::string::npos) {
      *error = "unexpected argument '" + arg + "': options are given as --key=value";
      return false;
    }
    std::string key = arg.substr(2, eq - 2);
    std::string value = arg.substr(eq + 1);
    if (key == "mindir_path") {
      options->mindir_path = value;
    } else if (key == "input_path" || key == "dataset_path") {
      options->input_path = value;
    } else if (key == "output_path") {
      options->output_path = value;
    } else if (key == "time_path") {
      options->time_path = value;
    } else if (key == "precision_mode") {
      options->precision_mode = value;
    } else if (key == "op_select_impl_mode") {
      options->op_select_impl_mode = value;
    } else if (key == "device_id") {
      if (!ParseInt(value, &options->device_id)) {
        *error = "--device_id must be a non-negative integer, got '" + value + "'";
        return false;
      }
    } else {
      *error = "unknown option --" + key;
      return false;
    }
  }
  if (options->mindir_path.empty() || options->input_path.empty()) {
    *error = "--mindir_path and --input_path are required";
    return false;
  }
  return true;
}

bool ListFiles(const std::string &dir, const std::string &suffix, std::vector<std::string> *files,
               std::string *error) {
  DIR *handle = opendir(dir.c_str());
  if (handle == nullptr) {
    *error = "cannot open input folder " + dir + ": " + std::strerror(errno);
    return false;
  }
  files->clear();
  struct dirent *entry;
  while ((entry = readdir(handle)) != nullptr) {
    std::string name(entry->d_name);
    if (name[0] == '.' || !EndsWith(name, suffix)) {
      continue;
    }
    std::string path = dir + "/" + name;
    struct stat info;
    if (stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
      files->push_back(path);
    }
  }
  closedir(handle);
  std::sort(files->begin(), files->end());
  return true;
}

std::string FileStem(const std::string &path) {
  size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = name.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

bool MakeDirs(const std::string &path) {
  if (path.empty() || IsDir(path)) {
    return true;
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0 && !MakeDirs(path.substr(0, slash))) {
    return false;
  }
  return mkdir(path.c_str(), 0755) == 0 || (errno == EEXIST && IsDir(path));
}

MSTensor ReadFileToTensor(const std::string &file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in.is_open()) {
    return MSTensor();
  }
  std::streamsize size = in.tellg();
  if (size <= 0) {
    return MSTensor();
  }
  MSTensor buffer(file, DataType::kNumberTypeUInt8, {static_cast<int64_t>(size)}, nullptr, static_cast<size_t>(size));
  in.seekg(0, std::ios::beg);
  if (buffer.MutableData() == nullptr || !in.read(reinterpret_cast<char *>(buffer.MutableData()), size)) {
    return MSTensor();
  }
  return buffer;
}

bool WriteResult(const std::string &dir, const std::string &stem, const std::vector<MSTensor> &outputs,
                 std::string *error) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string target = dir + "/" + stem + "_" + std::to_string(i) + ".bin";
    std::string tmp = target + ".tmp";
    std::shared_ptr<const void> data = outputs[i].Data();
    size_t size = outputs[i].DataSize();
    FILE *out = std::fopen(tmp.c_str(), "wb");
    if (out == nullptr) {
      *error = "cannot write " + tmp + ": " + std::strerror(errno);
      return false;
    }
    bool ok = (size == 0 || (data != nullptr && std::fwrite(data.get(), 1, size, out) == size));
    ok = (std::fclose(out) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), target.c_str()) != 0) {
      std::remove(tmp.c_str());
      *error = "cannot write " + target;
      return false;
    }
  }
  return true;
}
