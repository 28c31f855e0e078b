// Paths of the blksnapfs tree, parsed without looking at the kernel:
//   /                                  root
//   /UUID                              a snapshot
//   /UUID/events                       its events
//   /UUID/DEVICE                       one of its devices
//   /UUID/DEVICE/{image.raw,cbt.map,info}
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace blksnapfs {

enum class FileKind { image, cbt_map, info };

inline constexpr std::string_view events_name = "events";

// The name of a device file ("image.raw") and back.
std::string_view file_name(FileKind kind);
std::optional<FileKind> file_kind(std::string_view name);

struct PathRef {
    enum class Kind { root, snapshot, events, device, file };
    Kind kind = Kind::root;
    std::string snapshot; // canonical UUID text, but for the root
    std::string device;   // device name, for device and file
    FileKind file = FileKind::image;
    bool operator==(const PathRef&) const = default;
};

// nullopt for anything that cannot exist in the tree (ENOENT).
std::optional<PathRef> parse_path(std::string_view path);

} // namespace blksnapfs
