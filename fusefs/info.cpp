#include "info.hpp"

#include <nlohmann/json.hpp>

namespace blksnapfs {

std::string info_text(const TakenDevice& d) {
    nlohmann::ordered_json j;
    j["device"] = d.path;
    j["name"] = d.name;
    j["major"] = d.original.major;
    j["minor"] = d.original.minor;
    j["snapshot"] = d.snapshot.str();
    j["image"] = d.image_path();
    j["capacity"] = d.cbt.device_capacity;
    j["block_size"] = d.cbt.block_size;
    j["block_count"] = d.cbt.block_count;
    j["generation_id"] = d.cbt.generation_id.str();
    j["changes_number"] = d.cbt.changes_number;
    j["error_code"] = d.error_code;
    j["corrupted"] = d.error_code != 0;
    return j.dump(2) + "\n";
}

} // namespace blksnapfs
