//! Credit reasons never name a protected attribute and always name something an applicant
//! can understand or act on: every feature of every credit dataset in `../shared/data`
//! (crates/datasets `DATASETS`) walked through `credit_reason_for_feature` and the
//! catalogue's zh/en text. Without the data, the one-line error naming `scripts/fetch-data`.

use xiezhi_datasets::{default_data_dir, feature_names, DataError, Split, DATASETS};
use xiezhi_risk::catalogue::{credit_reason_for_feature, protected_attribute, Catalogue, Language, REASON_CODES};

/// Words and characters that would name a protected attribute in a reason's text.
const EN_WORDS: &[&str] = &[
    "age",
    "aged",
    "old",
    "young",
    "birth",
    "sex",
    "gender",
    "male",
    "female",
    "woman",
    "man",
    "married",
    "marital",
    "single",
    "divorced",
    "widow",
    "nationality",
    "national",
    "foreign",
    "foreigner",
    "citizen",
    "race",
    "religion",
];
const ZH_TERMS: &[&str] = &["年龄", "岁", "出生", "性别", "男", "女", "婚", "国籍", "外籍", "外国", "民族", "宗教"];

fn names_protected(en: &str, zh: &str) -> Option<String> {
    let lower = en.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphabetic()).collect();
    if let Some(w) = EN_WORDS.iter().find(|w| words.contains(w)) {
        return Some((*w).to_owned());
    }
    ZH_TERMS.iter().find(|t| zh.contains(*t)).map(|t| (*t).to_owned())
}

#[test]
fn no_credit_reason_names_a_protected_attribute() -> Result<(), DataError> {
    let catalogue = Catalogue::new();
    let mut walked = 0;
    for spec in DATASETS.iter().filter(|d| d.split == Split::Credit) {
        let features = feature_names(spec, &default_data_dir())?;
        for column in spec.protected {
            assert!(
                features.contains(&column.to_string()) || spec.drop.contains(column),
                "{}: no protected column `{column}`",
                spec.name
            );
            assert!(protected_attribute(column).is_some(), "{}: `{column}` is not recognised as protected", spec.name);
        }
        for feature in &features {
            let code = credit_reason_for_feature(feature);
            assert!(catalogue.contains(code), "{}: `{feature}` gives unknown code {code}", spec.name);
            assert!(names_protected(code, "").is_none(), "{}: code {code} for `{feature}`", spec.name);
            let en = catalogue.reason(Language::En, code, &[]).expect("en text");
            let zh = catalogue.reason(Language::Zh, code, &[]).expect("zh text");
            if let Some(term) = names_protected(&en, &zh) {
                panic!("{}: `{feature}` → {code} names `{term}`: {en} / {zh}", spec.name);
            }
            let protected = protected_attribute(feature).is_some() || spec.protected.contains(&feature.as_str());
            // A protected column is never made into a specific reason, and a permitted one
            // in a dataset the shipped model reads always is.
            if protected {
                assert_eq!(code, "credit_profile_other", "{}: `{feature}` is protected", spec.name);
            } else if spec.name == xiezhi_risk::shipped_credit_model().dataset() {
                assert_ne!(code, "credit_profile_other", "{}: `{feature}` needs an actionable reason", spec.name);
            }
            walked += 1;
        }
    }
    assert!(walked > 100, "{walked} features walked");
    // And no credit code's text anywhere in the catalogue names one.
    for code in REASON_CODES.iter().filter(|c| c.code.starts_with("credit_") || c.code == "band_spend_cap") {
        let args: Vec<(&str, String)> = ["band", "cap", "remaining"].iter().map(|k| (*k, "D".to_string())).collect();
        let en = catalogue.reason(Language::En, code.code, &args).unwrap_or_default();
        let zh = catalogue.reason(Language::Zh, code.code, &args).unwrap_or_default();
        assert!(names_protected(&en, &zh).is_none(), "{}: {en} / {zh}", code.code);
    }
    Ok(())
}
