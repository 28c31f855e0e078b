// The blksnapfs command line.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse3/fuse.h>
#include <fuse3/fuse_lowlevel.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <sys/types.h>

namespace blksnapfs {

struct Options {
    std::string mountpoint = "/snap";
    bool mountpoint_given = false;
    bool foreground = false;
    bool debug = false;
    bool writable = false;
    bool page_cache = false; // image.raw through the kernel's page cache
    bool help = false;
    bool version = false;
    unsigned readahead_kb = 1024;
    std::string group; // --group: who may read the images besides root
};

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses ARGS (argv). Options for FUSE itself (-o OPT, -d) stay in ARGS for
// fuse_new(); ours are taken out. Throws UsageError.
Options parse_options(fuse_args& args);

// The group named NAME, or numbered NAME; nullopt when there is none.
std::optional<gid_t> resolve_group(const std::string& name);

// The --help text.
std::string usage_text(const std::string& program);

} // namespace blksnapfs
