//! Stripe's form encoding: `application/x-www-form-urlencoded` pairs whose names use
//! bracket notation (`metadata[k]=v`, `line_items[0][quantity]=1`, `enabled_events[]=*`),
//! read into a tree, and typed reads of it that answer Stripe's 400 naming the parameter.

use std::collections::BTreeMap;

use super::StripeError;

/// Longest value of any parameter.
const MAX_VALUE: usize = 5000;
/// Deepest nesting read (`line_items[0][price_data][product_data][name]` is 4).
const MAX_DEPTH: usize = 5;

/// A parameter: text, a hash (named or indexed children) or a list (`name[]`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Text(String),
    Hash(BTreeMap<String, Param>),
    List(Vec<Param>),
}

/// A decoded form: its tree and its pairs (sorted, to compare two requests).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Form {
    pub(super) root: BTreeMap<String, Param>,
    pub(super) pairs: Vec<(String, String)>,
}

/// The segments of `a[b][c]`: `["a", "b", "c"]` (`[]` is an empty segment).
fn segments(name: &str) -> Option<Vec<&str>> {
    let (head, mut rest) = match name.find('[') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    if head.is_empty() || head.contains(']') {
        return None;
    }
    let mut out = vec![head];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let segment = &inner[..end];
        if segment.contains('[') {
            return None;
        }
        out.push(segment);
        rest = &inner[end + 1..];
    }
    Some(out)
}

fn insert(
    map: &mut BTreeMap<String, Param>,
    name: &str,
    path: &[&str],
    value: String,
) -> Result<(), StripeError> {
    let clash = || StripeError::param(name, format!("Invalid {name}: a value and a hash at once"));
    let (first, rest) = path.split_first().ok_or_else(clash)?;
    match rest.first() {
        None => {
            if matches!(map.get(*first), Some(Param::Hash(_) | Param::List(_))) {
                return Err(clash());
            }
            map.insert((*first).to_owned(), Param::Text(value));
            Ok(())
        }
        Some(&"") => {
            if rest.len() > 1 {
                return Err(StripeError::param(
                    name,
                    format!("Invalid {name}: [] only ends a name here"),
                ));
            }
            match map
                .entry((*first).to_owned())
                .or_insert_with(|| Param::List(Vec::new()))
            {
                Param::List(items) => {
                    items.push(Param::Text(value));
                    Ok(())
                }
                _ => Err(clash()),
            }
        }
        Some(_) => match map
            .entry((*first).to_owned())
            .or_insert_with(|| Param::Hash(BTreeMap::new()))
        {
            Param::Hash(inner) => insert(inner, name, rest, value),
            _ => Err(clash()),
        },
    }
}

impl Form {
    /// Reads a form body.
    ///
    /// # Errors
    /// 400 for a name that is not bracket notation, a value over 5,000 characters, a name
    /// used as a value and a hash at once.
    pub(super) fn parse(body: &[u8]) -> Result<Self, StripeError> {
        let mut root = BTreeMap::new();
        let mut pairs = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            let path = segments(&name)
                .filter(|p| p.len() <= MAX_DEPTH)
                .ok_or_else(|| StripeError::unknown(&name))?;
            if value.chars().count() > MAX_VALUE {
                return Err(StripeError::param(
                    name.as_ref(),
                    format!("Invalid {name}: must be at most {MAX_VALUE} characters"),
                ));
            }
            insert(&mut root, &name, &path, value.to_string())?;
            pairs.push((name.into_owned(), value.into_owned()));
        }
        pairs.sort();
        Ok(Self { root, pairs })
    }

    /// The top-level parameters.
    pub(super) fn fields(&self) -> Fields<'_> {
        Fields {
            path: String::new(),
            map: &self.root,
        }
    }
}

/// The children of a hash, with its name for errors.
#[derive(Debug, Clone)]
pub(super) struct Fields<'a> {
    path: String,
    map: &'a BTreeMap<String, Param>,
}

impl<'a> Fields<'a> {
    /// The full name of a child: `mode`, `line_items[0][quantity]`.
    pub(super) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}[{key}]", self.path)
        }
    }

    /// Refuses a key not in `allowed`.
    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), StripeError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(StripeError::unknown(&self.name(k))),
            None => Ok(()),
        }
    }

    /// A text child; an empty one reads as absent (as Stripe takes `key=`).
    pub(super) fn text(&self, key: &str) -> Result<Option<&'a str>, StripeError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Param::Text(s)) if s.is_empty() => Ok(None),
            Some(Param::Text(s)) => Ok(Some(s)),
            Some(_) => Err(StripeError::param(
                self.name(key),
                format!("Invalid {}: must be a string", self.name(key)),
            )),
        }
    }

    /// A text child that must be there.
    pub(super) fn required_text(&self, key: &str) -> Result<&'a str, StripeError> {
        self.text(key)?
            .ok_or_else(|| StripeError::missing(&self.name(key)))
    }

    /// An integer child.
    pub(super) fn integer(&self, key: &str) -> Result<Option<i64>, StripeError> {
        match self.text(key)? {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                StripeError::param(
                    self.name(key),
                    format!("Invalid integer: {}", super::clip(s, 40)),
                )
            }),
        }
    }

    /// A hash child.
    pub(super) fn hash(&self, key: &str) -> Result<Option<Fields<'a>>, StripeError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Param::Hash(map)) => Ok(Some(Fields {
                path: self.name(key),
                map,
            })),
            // `metadata=` clears a hash at Stripe: at creation, nothing.
            Some(Param::Text(s)) if s.is_empty() => Ok(None),
            Some(_) => Err(StripeError::param(
                self.name(key),
                format!("Invalid hash: {} must be a hash", self.name(key)),
            )),
        }
    }

    /// A hash child that must be there.
    pub(super) fn required_hash(&self, key: &str) -> Result<Fields<'a>, StripeError> {
        self.hash(key)?
            .ok_or_else(|| StripeError::missing(&self.name(key)))
    }

    /// An array child, `key[]=…` or `key[0]=…&key[1]=…` (indexes from 0 without gaps),
    /// with each item's full name.
    pub(super) fn array(&self, key: &str) -> Result<Option<Vec<(String, &'a Param)>>, StripeError> {
        let name = self.name(key);
        let invalid = || StripeError::param(&name, format!("Invalid array: {name}"));
        match self.map.get(key) {
            None => Ok(None),
            Some(Param::List(items)) => Ok(Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("{name}[{i}]"), p))
                    .collect(),
            )),
            Some(Param::Hash(map)) => {
                let mut indexed = map
                    .iter()
                    .map(|(k, p)| {
                        let digits = !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit());
                        match k.parse::<usize>() {
                            Ok(i) if digits => Ok((i, p)),
                            _ => Err(invalid()),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                indexed.sort_by_key(|(i, _)| *i);
                if indexed.iter().enumerate().any(|(n, (i, _))| n != *i) {
                    return Err(invalid());
                }
                Ok(Some(
                    indexed
                        .into_iter()
                        .map(|(i, p)| (format!("{name}[{i}]"), p))
                        .collect(),
                ))
            }
            Some(Param::Text(s)) if s.is_empty() => Ok(None),
            Some(Param::Text(_)) => Err(invalid()),
        }
    }

    /// An item of [`Fields::array`] as a hash.
    pub(super) fn item(name: String, param: &'a Param) -> Result<Fields<'a>, StripeError> {
        match param {
            Param::Hash(map) => Ok(Fields { path: name, map }),
            _ => Err(StripeError::param(
                &name,
                format!("Invalid hash: {name} must be a hash"),
            )),
        }
    }

    /// The text children of a hash child of strings (`metadata[k]=v`); empty values are
    /// left out.
    pub(super) fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, StripeError> {
        let Some(hash) = self.hash(key)? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for (k, v) in hash.map {
            match v {
                Param::Text(s) if s.is_empty() => {}
                Param::Text(s) => {
                    out.insert(k.clone(), s.clone());
                }
                _ => {
                    return Err(StripeError::param(
                        hash.name(k),
                        format!("Invalid {}: must be a string", hash.name(k)),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<Form, StripeError> {
        Form::parse(body.as_bytes())
    }

    #[test]
    fn bracket_names_nest_into_hashes_and_lists() {
        let f = form(
            "mode=payment&metadata[a]=1&line_items[0][price_data][product_data][name]=Tea%20cup\
             &enabled_events[]=x&enabled_events[]=y",
        )
        .expect("parses");
        let fields = f.fields();
        assert_eq!(fields.text("mode").unwrap(), Some("payment"));
        assert_eq!(fields.string_map("metadata").unwrap()["a"], "1");
        let items = fields.array("line_items").unwrap().expect("items");
        assert_eq!(items[0].0, "line_items[0]");
        let line = Fields::item(items[0].0.clone(), items[0].1).unwrap();
        let name = line
            .required_hash("price_data")
            .and_then(|p| p.required_hash("product_data"))
            .and_then(|p| p.required_text("name").map(str::to_owned));
        assert_eq!(name.unwrap(), "Tea cup");
        assert_eq!(fields.array("enabled_events").unwrap().unwrap().len(), 2);
    }

    #[test]
    fn an_array_with_a_gap_names_the_parameter() {
        let f = form("line_items[0][quantity]=1&line_items[2][quantity]=1").unwrap();
        let e = f.fields().array("line_items").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("line_items"));
    }

    #[test]
    fn a_name_used_as_value_and_hash_is_refused() {
        let e = form("metadata=x&metadata[a]=1").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("metadata[a]"));
        let e = form("metadata[a]=1&metadata=x").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("metadata"));
    }

    #[test]
    fn a_malformed_name_is_an_unknown_parameter() {
        for body in ["a[b=1", "[a]=1", "a]b=1", "a[b]c=1", "a[][b]=1"] {
            let e = form(body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
        }
    }

    #[test]
    fn pairs_are_sorted_so_order_does_not_matter() {
        assert_eq!(
            form("b=2&a=1").unwrap().pairs,
            form("a=1&b=2").unwrap().pairs
        );
    }
}
