//! A tiny command-line parser: `--key value` pairs and bare `--flag`s.
//!
//! Both programs take only a handful of options; this keeps them free of a CLI dependency
//! while still rejecting anything it does not know.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// Parses `argv` (without the program name). `flags` lists the options that take no
    /// value; every other `--key` must be followed by its value.
    pub fn parse(argv: impl IntoIterator<Item = String>, flags: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut set_flags = Vec::new();
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let Some(key) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            if flags.contains(&key) {
                set_flags.push(key.to_string());
            } else {
                let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
                values.insert(key.to_string(), value);
            }
        }
        Ok(Args {
            values,
            flags: set_flags,
        })
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.opt_str(key)
            .ok_or_else(|| format!("--{key} is required"))
    }

    /// The value of `--key` parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: cannot parse {v:?}")),
        }
    }

    /// Fails when an option outside `known` (values and flags alike) was given.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        for k in self.values.keys().chain(self.flags.iter()) {
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown option --{k}"));
            }
        }
        Ok(())
    }
}
