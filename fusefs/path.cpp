#include "path.hpp"

#include <blksnap/uuid.hpp>

#include <vector>

namespace blksnapfs {

namespace {

constexpr std::string_view image_name = "image.raw";
constexpr std::string_view cbt_map_name = "cbt.map";
constexpr std::string_view info_name = "info";

// Splits "/a/b/c" into its components; nullopt for empty components, "."
// and "..", which the kernel never sends.
std::optional<std::vector<std::string_view>> split(std::string_view path) {
    if (path.empty() || path.front() != '/')
        return std::nullopt;
    std::vector<std::string_view> parts;
    path.remove_prefix(1);
    while (!path.empty()) {
        const auto slash = path.find('/');
        const auto part = path.substr(0, slash);
        if (part.empty() || part == "." || part == "..")
            return std::nullopt;
        parts.push_back(part);
        if (slash == std::string_view::npos)
            break;
        path.remove_prefix(slash + 1);
        if (path.empty())
            return std::nullopt; // trailing slash
    }
    return parts;
}

} // namespace

std::string_view file_name(FileKind kind) {
    switch (kind) {
    case FileKind::image:
        return image_name;
    case FileKind::cbt_map:
        return cbt_map_name;
    case FileKind::info:
        return info_name;
    }
    return {};
}

std::optional<FileKind> file_kind(std::string_view name) {
    for (auto kind : {FileKind::image, FileKind::cbt_map, FileKind::info})
        if (name == file_name(kind))
            return kind;
    return std::nullopt;
}

std::optional<PathRef> parse_path(std::string_view path) {
    const auto parts = split(path);
    if (!parts || parts->size() > 3)
        return std::nullopt;
    PathRef ref;
    if (parts->empty())
        return ref;

    const auto& p = *parts;
    const auto id = blksnap::Uuid::try_parse(p[0]);
    if (!id || id->str() != p[0])
        return std::nullopt;
    ref.kind = PathRef::Kind::snapshot;
    ref.snapshot = id->str();
    if (p.size() == 1)
        return ref;

    if (p[1] == events_name) {
        if (p.size() > 2)
            return std::nullopt;
        ref.kind = PathRef::Kind::events;
        return ref;
    }
    ref.kind = PathRef::Kind::device;
    ref.device = std::string(p[1]);
    if (p.size() == 2)
        return ref;

    const auto kind = file_kind(p[2]);
    if (!kind)
        return std::nullopt;
    ref.kind = PathRef::Kind::file;
    ref.file = *kind;
    return ref;
}

} // namespace blksnapfs
