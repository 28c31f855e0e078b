#include <blksnap/error.hpp>
#include <blksnap/events.hpp>

#include <cerrno>
#include <cstring>

namespace blksnap {

std::string Version::str() const {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(revision) +
           "." + std::to_string(build);
}

std::string Event::name() const {
    if (code == blksnap_event_code_corrupted)
        return "corrupted";
    return "unknown-" + std::to_string(code);
}

Event decode_event(const blksnap_snapshot_event& raw) {
    Event ev;
    ev.code = raw.code;
    ev.time_label = raw.time_label;
    if (raw.code == blksnap_event_code_corrupted) {
        blksnap_event_corrupted body;
        static_assert(sizeof(body) <= sizeof(raw.data));
        std::memcpy(&body, raw.data, sizeof(body));
        ev.device = {body.dev_id_mj, body.dev_id_mn};
        ev.error_code = body.err_code;
    }
    return ev;
}

void follow_events(KernelBackend& backend, const Uuid& id,
                   const std::function<bool(const Event&)>& on_event,
                   std::chrono::milliseconds step, const std::function<bool()>& should_stop) {
    const auto step_ms = static_cast<std::uint32_t>(step.count());
    while (!should_stop || !should_stop()) {
        std::optional<Event> ev;
        try {
            ev = backend.snapshot_wait_event(id, step_ms);
        } catch (const Error& e) {
            if (e.code() == ENOENT)
                return; // the snapshot is gone: the stream ends
            if (e.code() == EINTR)
                continue;
            throw;
        }
        if (ev && !on_event(*ev))
            return;
    }
}

} // namespace blksnap
