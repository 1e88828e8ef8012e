//! Explanations that match what happened: every reason code, under every outcome a decision
//! giving it can have, in both languages, reads as that outcome and offers its ways out.

use xiezhi_risk::catalogue::{Catalogue, Language, REASON_CODES};
use xiezhi_risk::{Outcome, RecoveryKind};

const LANGUAGES: [Language; 2] = [Language::En, Language::Zh];

/// The variables a message quotes, read from its Fluent source (the value, its attributes and
/// selector arms: everything up to the next unindented line), so a message that gains one is
/// fed it without this test being told.
fn variables(source: &str, id: &str) -> Vec<String> {
    let start = format!("{id} =");
    let mut lines = source.lines().skip_while(|l| !l.starts_with(&start));
    let mut block = lines.next().unwrap_or_default().to_owned();
    for line in lines.take_while(|l| l.starts_with(' ')) {
        block.push_str(line);
    }
    let mut found = Vec::new();
    for part in block.split('$').skip(1) {
        let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// A value for each variable: figures as amounts, `scope` as one of its arms.
fn sample_args(id: &str) -> Vec<(&'static str, String)> {
    let mut names = variables(Catalogue::source(Language::En), id);
    for name in variables(Catalogue::source(Language::Zh), id) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|n| {
            let value = if n == "scope" { "above".to_owned() } else { "1234.56 CNY".to_owned() };
            (&*Box::leak(n.into_boxed_str()), value)
        })
        .collect()
}

/// Words that contradict an outcome, by language. `line_restricted` may say the line is
/// paused under any outcome: it is there because it is.
fn contradicts(outcome: Outcome, language: Language, code: &str) -> Vec<&'static str> {
    let paused: &[&str] = match (language, code == "line_restricted") {
        (_, true) => &[],
        (Language::En, false) => &["paused"],
        (Language::Zh, false) => &["暂停", "停用"],
    };
    let words: &[&str] = match (outcome, language) {
        (Outcome::StepUp, Language::En) => &["cannot", "not available", "did not go through", "stopped", "could not"],
        (Outcome::StepUp, Language::Zh) => &["不能", "未能完成", "不支持", "拦截", "无法"],
        (Outcome::Decline, Language::En) => &["one more check", "waiting"],
        (Outcome::Decline, Language::Zh) => &["再验证"],
        (Outcome::Restrict, Language::En) => &["one more check", "goes through", "go through"],
        (Outcome::Restrict, Language::Zh) => &["再验证一次", "可以完成", "才能继续"],
        (Outcome::Approve, _) => &[],
    };
    let mut all: Vec<&str> = words.to_vec();
    if outcome != Outcome::Restrict {
        all.extend(paused);
    }
    all
}

/// What an outcome's headline must say.
fn headline_says(outcome: Outcome, language: Language) -> &'static str {
    match (outcome, language) {
        (Outcome::Approve, Language::En) => "approved",
        (Outcome::Approve, Language::Zh) => "成功",
        (Outcome::StepUp, Language::En) => "one more check",
        (Outcome::StepUp, Language::Zh) => "再验证",
        (Outcome::Decline, Language::En) => "did not go through",
        (Outcome::Decline, Language::Zh) => "未能完成",
        (Outcome::Restrict, Language::En) => "paused until 2026-11-21 10:00 UTC",
        (Outcome::Restrict, Language::Zh) => "暂停，至 2026-11-21 10:00 UTC",
    }
}

/// Whether the ways out fit the outcome: a step-up's are its challenge first and never an
/// appeal or a restriction's verification; a decline's never a code (none is sent) and a
/// restriction's verification only where a restriction is why; a restriction's always
/// verifying, an appeal and its end, and never a lower amount.
fn ways_problem(outcome: Outcome, ways: &[RecoveryKind], line_restricted: bool) -> Option<String> {
    use RecoveryKind::*;
    let has = |k: RecoveryKind| ways.contains(&k);
    let ok = match outcome {
        Outcome::Approve => ways.is_empty(),
        Outcome::StepUp => {
            matches!(ways.first(), Some(OneTimeCode | Reauthenticate))
                && ![Appeal, VerifyIdentity, Repay, CompleteProfile].into_iter().any(has)
        }
        Outcome::Decline => {
            !ways.is_empty() && !has(OneTimeCode) && !has(Reauthenticate) && (line_restricted || !has(VerifyIdentity))
        }
        Outcome::Restrict => {
            [VerifyIdentity, Appeal, Wait].into_iter().all(has)
                && ![OneTimeCode, Reauthenticate, LowerAmount, Repay, CompleteProfile].into_iter().any(has)
        }
    };
    (!ok).then(|| format!("ways out {ways:?} do not fit {outcome:?}"))
}

/// Everything wrong with the catalogue's explanations, one line each.
fn problems(catalogue: &Catalogue) -> Vec<String> {
    let mut problems = Vec::new();
    let headline_args = vec![("until", "2026-11-21 10:00 UTC".to_owned())];
    for code in REASON_CODES {
        let outcomes = catalogue.outcomes_for(code.code);
        if !outcomes.contains(&code.default_outcome) || outcomes.len() < 3 {
            problems.push(format!("{}: outcomes {outcomes:?} leave out ones a policy or rule can give", code.code));
        }
        let id = code.code.replace('_', "-");
        let args = sample_args(&id);
        for outcome in outcomes {
            let at = format!("{} under {}", code.code, outcome.as_str());
            let line_restricted = code.code == "line_restricted";
            if let Some(p) =
                ways_problem(outcome, &catalogue.ways_out(outcome, &[code.code], line_restricted), line_restricted)
            {
                problems.push(format!("{at}: {p}"));
            }
            for language in LANGUAGES {
                let at = format!("{at} ({language:?})");
                let Some(sentence) = catalogue.reason_under(language, code.code, outcome, &args) else {
                    problems.push(format!("{at}: no message, or a Fluent error"));
                    continue;
                };
                if sentence.trim().is_empty() || sentence.contains(&id) || sentence.contains(code.code) {
                    problems.push(format!("{at}: empty or the raw id: {sentence:?}"));
                }
                if sentence.contains(['{', '}', '$']) {
                    problems.push(format!("{at}: an unreplaced placeable: {sentence:?}"));
                }
                for word in contradicts(outcome, language, code.code) {
                    if sentence.contains(word) {
                        problems.push(format!("{at}: says {word:?}, which {} is not: {sentence:?}", outcome.as_str()));
                    }
                }
                let explained = catalogue.explain_with(outcome, &headline_args, &[(code.code, args.clone())], &[]);
                let text = if language == Language::En { &explained.en } else { &explained.zh };
                let headline = catalogue.headline(language, outcome, &headline_args).unwrap_or_default();
                if !headline.contains(headline_says(outcome, language)) || !text.starts_with(&headline) {
                    problems.push(format!("{at}: headline does not say {}: {text:?}", outcome.as_str()));
                }
                if !text.ends_with(&sentence) {
                    problems.push(format!("{at}: explanation leaves out the reason: {text:?}"));
                }
            }
        }
    }
    problems
}

#[test]
fn every_reason_code_reads_as_each_outcome_it_can_take_in_both_languages() {
    let problems = problems(&Catalogue::new());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_walk_fails_when_an_outcome_message_is_missing() {
    // Without its step-up sentence, account_takeover_suspected falls back to "we paused
    // credit payments" under a step-up: the walk must catch it, in the language it is missing.
    let zh = Catalogue::source(Language::Zh);
    let without: String = zh
        .lines()
        .filter(|l| !l.trim_start().starts_with(".step-up = 您的账户可能正被他人使用"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, zh, "the zh step-up sentence of account_takeover_suspected is where this test expects");
    let catalogue = Catalogue::from_sources(Catalogue::source(Language::En), &without).unwrap();
    let found = problems(&catalogue);
    assert!(found.iter().any(|p| p.starts_with("account_takeover_suspected under step_up (Zh)")), "{found:?}");

    // A code with no message at all.
    let en: String = Catalogue::source(Language::En)
        .lines()
        .filter(|l| !l.starts_with("ip-shared ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let catalogue = Catalogue::from_sources(&en, zh).unwrap();
    assert!(problems(&catalogue).iter().any(|p| p.starts_with("ip_shared under step_up (En): no message")));
}

#[test]
fn a_step_up_for_account_takeover_asks_for_the_code_and_does_not_say_the_line_is_paused() {
    let catalogue = Catalogue::new();
    let explained = catalogue.explain(Outcome::StepUp, &[("account_takeover_suspected", vec![])]);
    assert!(!explained.zh.contains("暂停") && !explained.en.contains("paused"), "{explained:?}");
    assert!(explained.zh.contains("确认是您本人"), "{}", explained.zh);
    let ways = catalogue.ways_out(Outcome::StepUp, &["account_takeover_suspected"], false);
    assert_eq!(ways, [RecoveryKind::OneTimeCode]);
    // Its default outcome, a restriction, still says so and how to lift it.
    let restricted = catalogue.ways_out(Outcome::Restrict, &["account_takeover_suspected"], false);
    assert_eq!(restricted, [RecoveryKind::VerifyIdentity, RecoveryKind::Appeal, RecoveryKind::Wait]);
}

#[test]
fn a_lower_amount_names_each_source_of_its_figure() {
    let catalogue = Catalogue::new();
    let said = |language, basis: &str| {
        let args = [("max", "1000.00 CNY".to_owned()), ("basis", basis.to_owned())];
        catalogue.message(language, "way-lower-amount", &args).unwrap_or_default()
    };
    for language in LANGUAGES {
        let usual = said(language, "usual_amount");
        assert!(usual.contains("1000.00 CNY"), "{usual}");
        // Each reason that sets the figure has its own words, not the usual-amount fallback.
        for basis in
            ["policy_payment_cap", "policy_daily_cap", "policy_kyc_level", "band_spend_cap", "insufficient_credit"]
        {
            let text = said(language, basis);
            assert!(text.contains("1000.00 CNY") && text != usual, "{basis} ({language:?}): {text}");
        }
    }
}

#[test]
fn a_reason_without_the_figures_it_quotes_reads_plainly_not_as_its_id() {
    // A line frozen by an accepted repair is refused as `line_restricted` with no end to quote.
    let explained = Catalogue::new().explain(Outcome::Decline, &[("line_restricted", vec![])]);
    assert!(explained.en.ends_with("Credit payments on your account are paused for now."), "{}", explained.en);
    assert!(!explained.zh.contains("line_restricted") && explained.zh.contains("暂时停用"), "{}", explained.zh);
}
