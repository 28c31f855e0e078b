// The state of a running blksnapfs and its FUSE operations.
#pragma once

#include "handles.hpp"
#include "options.hpp"
#include "tree.hpp"

#include <ctime>
#include <mutex>

namespace blksnapfs {

struct Daemon {
    Daemon(Source& source, Options options) : tree(source), options(std::move(options)) {}

    Tree tree;
    HandleTable handles;
    Options options;
    gid_t gid = 0; // the group of the files: --group's, or root
    std::time_t started = std::time(nullptr);
    std::once_flag readahead_set;
};

// The operations; fuse_new()'s private data must be a Daemon*.
const fuse_operations& operations();

} // namespace blksnapfs
