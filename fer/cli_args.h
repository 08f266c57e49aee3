// Command-line flags for the `fer` subcommands: --name value, --name=value and boolean
// --switch, checked against the flags the command declares, so that a typo is an error
// ("fer train: unknown flag --epoch (did you mean --epochs?)") and not a silent default.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace fer {

struct FlagSpec {
  std::string name;   // without dashes: "epochs"
  std::string value;  // placeholder shown in help ("N"); empty for a boolean switch
  std::string help;
};

class Args {
 public:
  // Parses argv after the subcommand. Throws fer::Error on unknown flags, missing values.
  Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv);

  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& name) const;  // repeated flags
  int integer(const std::string& name, int fallback) const;
  double number(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return has(name); }
  const std::vector<std::string>& positional() const { return positional_; }
  bool help() const { return help_; }

  std::string usage() const;  // the flag table

 private:
  const FlagSpec* find(const std::string& name) const;
  std::string command_;
  std::vector<FlagSpec> specs_;
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace fer
