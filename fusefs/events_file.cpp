#include "events_file.hpp"
#include "event_line.hpp"

#include <blksnap/error.hpp>

#include <cerrno>

namespace blksnapfs {

std::optional<std::string> next_event_line(Source& source, const blksnap::Uuid& id,
                                           const std::function<bool()>& should_stop,
                                           std::uint32_t step_ms) {
    for (;;) {
        if (should_stop && should_stop())
            throw blksnap::Error(EINTR, "events " + id.str());
        try {
            if (auto ev = source.wait_event(id, step_ms))
                return event_line(*ev);
        } catch (const blksnap::Error& e) {
            if (e.code() == ENOENT)
                return std::nullopt;
            if (e.code() != EINTR)
                throw;
        }
    }
}

} // namespace blksnapfs
