#include "options.hpp"

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <grp.h>
#include <string_view>
#include <vector>

namespace blksnapfs {

namespace {

enum Key {
    key_foreground,
    key_debug,
    key_writable,
    key_help,
    key_version,
    key_readahead,
    key_page_cache,
    key_group
};

const fuse_opt option_spec[] = {
    FUSE_OPT_KEY("-f", key_foreground),
    FUSE_OPT_KEY("--foreground", key_foreground),
    FUSE_OPT_KEY("-d", key_debug),
    FUSE_OPT_KEY("--debug", key_debug),
    FUSE_OPT_KEY("-w", key_writable),
    FUSE_OPT_KEY("--writable", key_writable),
    FUSE_OPT_KEY("-h", key_help),
    FUSE_OPT_KEY("--help", key_help),
    FUSE_OPT_KEY("-V", key_version),
    FUSE_OPT_KEY("--version", key_version),
    FUSE_OPT_KEY("--readahead=", key_readahead),
    FUSE_OPT_KEY("--page-cache", key_page_cache),
    FUSE_OPT_KEY("--group=", key_group),
    FUSE_OPT_KEY("--group ", key_group),
    FUSE_OPT_END,
};

struct State {
    Options options;
    std::string error;
};

int on_option(void* data, const char* arg, int key, fuse_args*) {
    auto& st = *static_cast<State*>(data);
    auto& o = st.options;
    switch (key) {
    case key_foreground:
        o.foreground = true;
        return 0;
    case key_debug:
        o.debug = true;
        o.foreground = true;
        return 1; // FUSE prints its requests too
    case key_writable:
        o.writable = true;
        return 0;
    case key_help:
        o.help = true;
        return 0;
    case key_version:
        o.version = true;
        return 0;
    case key_page_cache:
        o.page_cache = true;
        return 0;
    case key_readahead: {
        const std::string_view value =
            std::string_view(arg).substr(std::string_view("--readahead=").size());
        char* end = nullptr;
        const unsigned long kb = std::strtoul(std::string(value).c_str(), &end, 10);
        if (value.empty() || *end != '\0' || kb > (1ul << 20)) {
            st.error = "--readahead: a number of KiB up to 1048576";
            return -1;
        }
        o.readahead_kb = static_cast<unsigned>(kb);
        return 0;
    }
    case key_group: {
        // "--group=NAME", or "--group" and NAME joined by fuse_opt.
        std::string_view value = std::string_view(arg).substr(std::string_view("--group").size());
        if (!value.empty() && value.front() == '=')
            value.remove_prefix(1);
        if (value.empty()) {
            st.error = "--group: a group name or number";
            return -1;
        }
        o.group = value;
        return 0;
    }
    case FUSE_OPT_KEY_NONOPT:
        if (o.mountpoint_given) {
            st.error = std::string("unexpected argument '") + arg + "'";
            return -1;
        }
        o.mountpoint = arg;
        o.mountpoint_given = true;
        return 0;
    case FUSE_OPT_KEY_OPT:
        if (arg[0] == '-' && arg[1] != 'o') {
            st.error = std::string("unknown option '") + arg + "'";
            return -1;
        }
        return 1;
    default:
        return 1;
    }
}

} // namespace

Options parse_options(fuse_args& args) {
    State st;
    if (fuse_opt_parse(&args, &st, option_spec, on_option) != 0)
        throw UsageError(st.error.empty() ? "bad arguments" : st.error);
    return st.options;
}

std::optional<gid_t> resolve_group(const std::string& name) {
    gid_t gid = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), gid);
    if (ec == std::errc() && end == name.data() + name.size() && !name.empty())
        return gid;
    std::vector<char> buf(16384);
    group gr{};
    group* found = nullptr;
    if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
        return std::nullopt;
    return found->gr_gid;
}

std::string usage_text(const std::string& program) {
    return "Usage: " + program +
           " [options] [MOUNTPOINT]\n"
           "Show blksnap snapshots as files under MOUNTPOINT (default /snap):\n"
           "  MOUNTPOINT/UUID/DEVICE/image.raw  the device as it was at the take\n"
           "  MOUNTPOINT/UUID/DEVICE/cbt.map    its change map (one byte per block)\n"
           "  MOUNTPOINT/UUID/DEVICE/info       its state (JSON)\n"
           "  MOUNTPOINT/UUID/events            the snapshot's events, one per line\n"
           "\n"
           "Options:\n"
           "  -f, --foreground   stay in the foreground\n"
           "  -d, --debug        foreground, and print every FUSE request\n"
           "  -w, --writable     image.raw writable (writes go to the snapshot image)\n"
           "  --group=GROUP      image.raw, cbt.map and events readable (with -w,\n"
           "                     image.raw writable) by GROUP too, not only by root\n"
           "                     (use with -o allow_other)\n"
           "  --page-cache       image.raw through the kernel's page cache (shared mmap,\n"
           "                     cached rereads; slower for large sequential reads)\n"
           "  --readahead=KB     read-ahead of the mount with --page-cache (default 1024)\n"
           "  -o OPT[,OPT...]    FUSE mount options (allow_other, ...)\n"
           "  -h, --help         this help\n"
           "  -V, --version      the version\n"
           "Stop it with: fusermount3 -u MOUNTPOINT (or umount MOUNTPOINT)\n";
}

} // namespace blksnapfs
