#include <blksnap/error.hpp>
#include <blksnap/uuid.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <uuid/uuid.h>

namespace blksnap {

static_assert(sizeof(uuid_t) == UUID_SIZE);

Uuid::Uuid(const blksnap_uuid& raw) {
    std::copy(std::begin(raw.b), std::end(raw.b), bytes_.begin());
}

std::optional<Uuid> Uuid::try_parse(std::string_view text) {
    std::string s(text); // uuid_parse needs a NUL-terminated string
    uuid_t u;
    if (s.size() != 36 || uuid_parse(s.c_str(), u) != 0)
        return std::nullopt;
    Uuid id;
    std::memcpy(id.bytes_.data(), u, UUID_SIZE);
    return id;
}

Uuid Uuid::parse(std::string_view text) {
    if (auto id = try_parse(text))
        return *id;
    throw Error(EINVAL, "uuid '" + std::string(text) + "'", "not a UUID");
}

std::string Uuid::str() const {
    uuid_t u;
    std::memcpy(u, bytes_.data(), UUID_SIZE);
    char text[37];
    uuid_unparse_lower(u, text);
    return text;
}

blksnap_uuid Uuid::raw() const {
    blksnap_uuid raw;
    std::copy(bytes_.begin(), bytes_.end(), raw.b);
    return raw;
}

bool Uuid::is_null() const {
    return std::all_of(bytes_.begin(), bytes_.end(), [](auto b) { return b == 0; });
}

} // namespace blksnap
