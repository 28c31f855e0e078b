#include <blksnap/error.hpp>

#include <cerrno>
#include <system_error>

namespace blksnap {

Error::Error(int code, const std::string& context)
    : Error(code, context, std::generic_category().message(code)) {}

namespace {

// REASON, with the errno text after it unless it says it already: a reason
// explains, the errno text is what scripts and searches look for.
std::string with_errno_text(int code, const std::string& reason) {
    if (code == 0)
        return reason;
    const std::string text = std::generic_category().message(code);
    if (reason.find(text) != std::string::npos)
        return reason;
    return reason + " (" + text + ")";
}

} // namespace

Error::Error(int code, const std::string& context, const std::string& reason)
    : std::runtime_error(context.empty() ? reason : context + ": " + with_errno_text(code, reason)),
      code_(code) {}

void throw_errno(const std::string& context) {
    throw Error(errno, context);
}

std::string context(const std::string& op, const std::string& object) {
    return object.empty() ? op : op + " " + object;
}

} // namespace blksnap
