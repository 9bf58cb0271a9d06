#include "model/tokenizer_merges.h"

#include <boost/json.hpp>

#include <string_view>

namespace crescent::model {

Result<std::vector<std::pair<std::string, std::string>>> ParseMerges(const boost::json::array& merges_in) {
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_in.size());
  for (const boost::json::value& m : merges_in) {
    if (m.is_string()) {
      std::string_view s = m.get_string();
      size_t sp = s.find(' ');
      if (sp == std::string_view::npos) return InvalidArgument("tokenizer.json: merge without a space: " + std::string(s));
      size_t sp2 = s.find(' ', sp + 1);
      merges.emplace_back(std::string(s.substr(0, sp)),
                          std::string(s.substr(sp + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp - 1)));
    } else if (m.is_array() && m.get_array().size() == 2 && m.get_array()[0].is_string() &&
               m.get_array()[1].is_string()) {
      merges.emplace_back(std::string(m.get_array()[0].get_string()), std::string(m.get_array()[1].get_string()));
    } else {
      return InvalidArgument("tokenizer.json: malformed merge entry");
    }
  }
  return merges;
}

}  // namespace crescent::model
