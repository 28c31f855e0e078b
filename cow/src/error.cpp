#include <blksnap/error.hpp>

#include <cerrno>
#include <system_error>

namespace blksnap {

Error::Error(int code, const std::string& context)
    : Error(code, context, std::generic_category().message(code)) {}

Error::Error(int code, const std::string& context, const std::string& reason)
    : std::runtime_error(context.empty() ? reason : context + ": " + reason), code_(code) {}

void throw_errno(const std::string& context) {
    throw Error(errno, context);
}

std::string context(const std::string& op, const std::string& object) {
    return object.empty() ? op : op + " " + object;
}

} // namespace blksnap
