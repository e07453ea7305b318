//! A bench binary's `--name value` flags, for the benches that are servers or load clients
//! driven by a script (`grpc_load`, `revocation_fanout`).
// Each bench uses the part it needs.
#![allow(dead_code)]

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `--name value` pairs.
pub struct Flags(Vec<(String, String)>);

impl Flags {
    pub fn parse(args: &[String]) -> Self {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(name) = args.next() {
            let value = args.next().cloned().unwrap_or_default();
            pairs.push((name.trim_start_matches("--").to_owned(), value));
        }
        Self(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(flag, _)| flag == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, BoxError> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is needed").into())
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, BoxError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name}: not a number: {text:?}").into()),
        }
    }
}
