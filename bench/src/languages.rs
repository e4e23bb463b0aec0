//! `bench languages`: how well the product tells a ticket's language, on a small labelled
//! sample written for this project (`bench/data/language-sample.tsv`, twelve languages),
//! next to two baselines run on the same texts in the same run: `whatlang`'s raw answer
//! (no minimum length, no reliability rule) and a stopword-count detector written here.
//!
//! Every detector reads a text as tagging reads it: `datasets::ticket::model_text` of the
//! ticket's body, so traces are already cut down to their marker and first lines.

use super::{Markers, load_average, machine, write_section};
use anyhow::{Context, bail};
use clap::Args;
use datasets::language::{LANGUAGE_SAMPLE_BYTES, Language, MIN_LANGUAGE_LETTERS};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

const MARKERS: Markers = Markers {
    start: "<!-- bench:languages:start -->",
    end: "<!-- bench:languages:end -->",
};
/// A new section goes right after the normalisation section, where detection's cost is.
const AFTER_MARKER: &str = "<!-- bench:normalise:end -->";
/// Passes over the whole sample per detector; the median pass gives the cost per ticket.
const TIMED_PASSES: usize = 101;

#[derive(Debug, Args)]
pub struct LanguagesBench {
    /// The labelled sample: `language<TAB>text` lines, `#` comments, one header line.
    #[arg(long, default_value = "bench/data/language-sample.tsv")]
    sample: PathBuf,
    /// Markdown file whose language section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
}

/// One labelled text of the sample.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Labelled {
    pub language: Language,
    pub text: String,
}

/// Parses the sample file: `#` lines are comments, the first other line is the header
/// `language<TAB>text`, every further line one text, with `\n` for a line break and `\\`
/// for a backslash. Any malformed line is an error naming its line number.
pub(crate) fn parse_sample(file: &str) -> anyhow::Result<Vec<Labelled>> {
    let mut lines = file
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty());
    match lines.next() {
        Some((_, "language\ttext")) => {}
        Some((number, line)) => bail!(
            "line {}: expected the header \"language<TAB>text\", found {line:?}",
            number + 1
        ),
        None => bail!("the sample has no header and no texts"),
    }
    lines
        .map(|(number, line)| {
            let (code, text) = line.split_once('\t').context(format!(
                "line {}: no tab between language and text",
                number + 1
            ))?;
            if text.contains('\t') {
                bail!("line {}: more than two columns", number + 1);
            }
            let language =
                Language::parse(code).map_err(|e| anyhow::anyhow!("line {}: {e}", number + 1))?;
            if language.code() != code {
                bail!("line {}: write the code {code:?} in lower case", number + 1);
            }
            let text = unescape(text).context(format!("line {}", number + 1))?;
            if text.trim().is_empty() {
                bail!("line {}: empty text", number + 1);
            }
            Ok(Labelled { language, text })
        })
        .collect()
}

/// `\n` → line break, `\\` → backslash; any other escape is refused rather than guessed.
fn unescape(text: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            other => bail!(
                "unknown escape \\{}",
                other.map(String::from).unwrap_or_default()
            ),
        }
    }
    Ok(out)
}

/// The detectors compared, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Detector {
    /// `datasets::language::detect_language`, exactly what tagging calls.
    Product,
    /// `whatlang::detect` on the same first bytes, taking its answer whatever its length
    /// or confidence.
    WhatlangRaw,
    /// [`stopword_language`], closed over the sample's twelve languages.
    Stopwords,
}

impl Detector {
    const ALL: [Detector; 3] = [
        Detector::Product,
        Detector::WhatlangRaw,
        Detector::Stopwords,
    ];

    fn name(self) -> &'static str {
        match self {
            Detector::Product => "product (`detect_language`)",
            Detector::WhatlangRaw => "whatlang, raw answer",
            Detector::Stopwords => "stopword count",
        }
    }

    fn detect(self, text: &str) -> Option<Language> {
        match self {
            Detector::Product => datasets::language::detect_language(text),
            Detector::WhatlangRaw => whatlang::detect(first_bytes(text))
                .and_then(|info| Language::parse(info.lang().code()).ok()),
            Detector::Stopwords => stopword_language(first_bytes(text)),
        }
    }
}

/// The first [`LANGUAGE_SAMPLE_BYTES`] of a text, as the product reads it.
fn first_bytes(text: &str) -> &str {
    let mut end = text.len().min(LANGUAGE_SAMPLE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The most frequent function words of each language, from general knowledge of the
/// languages (not from the sample). Chinese and Japanese are matched per character: their
/// commonest particles and function characters are single characters.
const STOPWORDS: [(&str, &[&str]); 12] = [
    (
        "eng",
        &[
            "the", "and", "to", "of", "a", "in", "is", "it", "you", "that", "for", "on", "with",
            "this", "was", "are", "be", "have", "not", "but", "my", "we", "i", "can", "from",
            "our", "your", "me", "do", "after",
        ],
    ),
    (
        "deu",
        &[
            "der", "die", "das", "und", "ist", "nicht", "ich", "es", "sie", "wir", "mit", "den",
            "dem", "ein", "eine", "zu", "auf", "für", "von", "im", "sich", "auch", "aber", "noch",
            "bei", "wie", "kann", "uns", "bitte", "mehr",
        ],
    ),
    (
        "fra",
        &[
            "le", "la", "les", "de", "des", "du", "et", "est", "un", "une", "je", "nous", "vous",
            "pas", "ne", "que", "qui", "pour", "dans", "sur", "avec", "il", "elle", "au", "aux",
            "ce", "mon", "notre", "mais", "plus",
        ],
    ),
    (
        "spa",
        &[
            "el", "la", "los", "las", "de", "del", "y", "que", "en", "un", "una", "es", "no",
            "por", "para", "con", "se", "lo", "me", "mi", "su", "al", "pero", "como", "nos", "muy",
            "ya", "este", "esta", "desde",
        ],
    ),
    (
        "por",
        &[
            "o", "a", "os", "as", "de", "do", "da", "dos", "das", "e", "que", "em", "no", "na",
            "um", "uma", "é", "não", "para", "com", "se", "por", "mas", "nos", "meu", "minha",
            "como", "ao", "está", "isso",
        ],
    ),
    (
        "ita",
        &[
            "il", "lo", "la", "i", "gli", "le", "di", "del", "della", "e", "che", "è", "un", "una",
            "non", "per", "con", "in", "da", "mi", "si", "ma", "come", "al", "nel", "sono", "ho",
            "questo", "anche", "più",
        ],
    ),
    (
        "nld",
        &[
            "de", "het", "een", "en", "van", "is", "dat", "niet", "ik", "je", "we", "wij", "op",
            "te", "in", "met", "voor", "zijn", "er", "maar", "ook", "als", "bij", "aan", "naar",
            "heb", "kan", "geen", "nog", "om",
        ],
    ),
    (
        "pol",
        &[
            "i", "w", "na", "nie", "się", "z", "do", "to", "jest", "że", "o", "jak", "ale", "po",
            "co", "tak", "od", "za", "mnie", "czy", "jestem", "już", "mi", "ten", "ta", "przez",
            "dla", "są", "być", "a",
        ],
    ),
    (
        "rus",
        &[
            "и", "в", "не", "на", "что", "я", "с", "по", "это", "как", "а", "но", "к", "у", "из",
            "за", "от", "мы", "вы", "он", "она", "же", "для", "уже", "так", "при", "о", "до",
            "нас", "нет",
        ],
    ),
    (
        "jpn",
        &[
            "の", "に", "は", "を", "が", "で", "て", "と", "も", "た", "し", "か", "な", "い",
        ],
    ),
    (
        "cmn",
        &[
            "的", "了", "是", "在", "我", "不", "有", "这", "个", "们", "和", "也", "就", "都",
            "一", "到", "说", "要", "吗", "请",
        ],
    ),
    (
        "tur",
        &[
            "ve", "bir", "bu", "da", "de", "için", "ile", "ne", "çok", "ama", "gibi", "daha",
            "olarak", "var", "ben", "sen", "biz", "o", "mi", "mı", "değil", "kadar", "sonra", "şu",
            "her", "en", "veya", "ki", "diye", "hiç",
        ],
    ),
];

/// Each stopword's languages (by index into [`STOPWORDS`]), built once: the baseline's
/// cost should be its counting, not building its table.
static STOPWORD_INDEX: LazyLock<HashMap<&'static str, Vec<usize>>> = LazyLock::new(|| {
    let mut index: HashMap<&'static str, Vec<usize>> = HashMap::new();
    for (language, (_, words)) in STOPWORDS.iter().enumerate() {
        for word in *words {
            index.entry(*word).or_default().push(language);
        }
    }
    index
});

/// Han ideographs and Japanese kana: scripts without spaces, read one character per token.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // hiragana, katakana
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xF900..=0xFAFF) // CJK compatibility ideographs
}

/// Lower-cased word tokens: runs of letters, and every CJK character on its own.
fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphabetic() && !is_cjk(c) {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if is_cjk(c) {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// The baseline: the language whose stopwords occur most often in the text; no decision
/// when none occurs or two languages tie for first.
pub(crate) fn stopword_language(text: &str) -> Option<Language> {
    let mut counts = [0usize; STOPWORDS.len()];
    for token in tokens(text) {
        for &language in STOPWORD_INDEX.get(token.as_str()).into_iter().flatten() {
            counts[language] += 1;
        }
    }
    let best = *counts.iter().max()?;
    let mut leaders = (0..counts.len()).filter(|&i| counts[i] == best);
    match (best, leaders.next(), leaders.next()) {
        (0, _, _) | (_, _, Some(_)) => None,
        (_, Some(only), None) => Language::parse(STOPWORDS[only].0).ok(),
        (_, None, None) => None,
    }
}

/// What one detector did on one language's texts.
#[derive(Debug, Default, Clone)]
struct Tally {
    texts: usize,
    right: usize,
    wrong: usize,
    undecided: usize,
}

impl Tally {
    fn add(&mut self, truth: Language, answer: Option<Language>) {
        self.texts += 1;
        match answer {
            Some(found) if found == truth => self.right += 1,
            Some(_) => self.wrong += 1,
            None => self.undecided += 1,
        }
    }

    fn decided(&self) -> usize {
        self.right + self.wrong
    }

    /// Right among the texts it decided; `None` when it decided none.
    fn precision(&self) -> Option<f64> {
        (self.decided() > 0).then(|| self.right as f64 / self.decided() as f64)
    }

    /// Right among all texts: an undecided text counts as not right.
    fn accuracy(&self) -> f64 {
        self.right as f64 / self.texts.max(1) as f64
    }

    fn merge(&mut self, other: &Tally) {
        self.texts += other.texts;
        self.right += other.right;
        self.wrong += other.wrong;
        self.undecided += other.undecided;
    }
}

/// Every detector's answers on the sample.
struct Results {
    /// By detector, then by language code.
    tallies: BTreeMap<Detector, BTreeMap<&'static str, Tally>>,
    /// By detector: (truth, answer) → count, wrong answers only.
    confusions: BTreeMap<Detector, BTreeMap<(&'static str, &'static str), usize>>,
    /// Texts the product left undecided for having too few letters.
    too_short: usize,
    /// Texts the product left undecided though long enough: whatlang was not sure.
    unsure: usize,
    /// Among the product's undecided texts, how many each baseline got right.
    right_where_undecided: BTreeMap<Detector, usize>,
    /// Median cost per ticket of each detector over the whole sample.
    cost: BTreeMap<Detector, Duration>,
    /// The product's wrong decisions: truth, answer, the start of the text.
    product_wrong: Vec<(&'static str, &'static str, String)>,
}

fn measure(sample: &[Labelled]) -> Results {
    // Read as tagging reads a ticket: its model text, subject empty.
    let texts: Vec<String> = sample
        .iter()
        .map(|l| datasets::ticket::model_text("", &l.text))
        .collect();
    let mut results = Results {
        tallies: BTreeMap::new(),
        confusions: BTreeMap::new(),
        too_short: 0,
        unsure: 0,
        right_where_undecided: BTreeMap::new(),
        cost: BTreeMap::new(),
        product_wrong: Vec::new(),
    };
    let product: Vec<Option<Language>> =
        texts.iter().map(|t| Detector::Product.detect(t)).collect();
    for detector in Detector::ALL {
        let tallies = results.tallies.entry(detector).or_default();
        let confusions = results.confusions.entry(detector).or_default();
        let mut right_where_undecided = 0;
        for ((labelled, text), product_answer) in sample.iter().zip(&texts).zip(&product) {
            let answer = detector.detect(text);
            let truth = labelled.language;
            tallies.entry(truth.code()).or_default().add(truth, answer);
            if let Some(found) = answer.filter(|found| *found != truth) {
                *confusions.entry((truth.code(), found.code())).or_default() += 1;
            }
            if product_answer.is_none() && answer == Some(truth) {
                right_where_undecided += 1;
            }
        }
        results
            .right_where_undecided
            .insert(detector, right_where_undecided);
        results
            .cost
            .insert(detector, cost_per_text(detector, &texts));
    }
    for ((labelled, text), answer) in sample.iter().zip(&texts).zip(&product) {
        if let Some(found) = answer {
            if *found != labelled.language {
                let truth = labelled.language.code();
                results
                    .product_wrong
                    .push((truth, found.code(), snippet(&labelled.text)));
            }
            continue;
        }
        let letters = first_bytes(text)
            .chars()
            .filter(|c| c.is_alphabetic())
            .count();
        if letters < MIN_LANGUAGE_LETTERS {
            results.too_short += 1;
        } else {
            results.unsure += 1;
        }
    }
    results
}

/// The first words of a text on one line, for the list of wrong decisions.
fn snippet(text: &str) -> String {
    const CHARS: usize = 70;
    let flat = text.replace('\n', " ⏎ ");
    let mut cut: String = flat.chars().take(CHARS).collect();
    if flat.chars().count() > CHARS {
        cut.push('…');
    }
    cut.replace('`', "'")
}

/// The median over [`TIMED_PASSES`] passes of one pass's time, divided by the texts.
fn cost_per_text(detector: Detector, texts: &[String]) -> Duration {
    let mut passes: Vec<Duration> = (0..TIMED_PASSES)
        .map(|_| {
            let started = Instant::now();
            for text in texts {
                std::hint::black_box(detector.detect(std::hint::black_box(text)));
            }
            started.elapsed()
        })
        .collect();
    passes.sort();
    passes[passes.len() / 2] / texts.len().max(1) as u32
}

pub fn run(args: &LanguagesBench) -> anyhow::Result<()> {
    let file = std::fs::read_to_string(&args.sample)
        .context(format!("cannot read {}", args.sample.display()))?;
    let sample = parse_sample(&file).context(format!("in {}", args.sample.display()))?;
    let load_before = load_average();
    let results = measure(&sample);
    let section = section(args, &sample, &results, (&load_before, &load_average()));
    println!("{section}");
    write_section(&args.output, &section, MARKERS, Some(AFTER_MARKER))
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.2}"))
}

fn per_language_table(results: &Results) -> String {
    let mut table = String::from(
        "| language | texts | product right | wrong | undecided | product accuracy on decided | \
         product accuracy on all | whatlang raw accuracy | stopword accuracy |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let empty = BTreeMap::new();
    let of = |detector: Detector| results.tallies.get(&detector).unwrap_or(&empty);
    let mut totals: BTreeMap<Detector, Tally> = BTreeMap::new();
    for (code, product) in of(Detector::Product) {
        let raw = of(Detector::WhatlangRaw)
            .get(code)
            .cloned()
            .unwrap_or_default();
        let stop = of(Detector::Stopwords)
            .get(code)
            .cloned()
            .unwrap_or_default();
        let name = Language::parse(code).map_or("?", |l| l.english_name());
        let _ = writeln!(
            table,
            "| {name} (`{code}`) | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            product.texts,
            product.right,
            product.wrong,
            product.undecided,
            ratio(product.precision()),
            product.accuracy(),
            raw.accuracy(),
            stop.accuracy(),
        );
        totals.entry(Detector::Product).or_default().merge(product);
        totals.entry(Detector::WhatlangRaw).or_default().merge(&raw);
        totals.entry(Detector::Stopwords).or_default().merge(&stop);
    }
    let total = |detector| totals.get(&detector).cloned().unwrap_or_default();
    let product = total(Detector::Product);
    let _ = writeln!(
        table,
        "| **all** | **{}** | **{}** | **{}** | **{}** | **{}** | **{:.3}** | **{:.3}** | **{:.3}** |",
        product.texts,
        product.right,
        product.wrong,
        product.undecided,
        ratio(product.precision()),
        product.accuracy(),
        total(Detector::WhatlangRaw).accuracy(),
        total(Detector::Stopwords).accuracy(),
    );
    table
}

fn overall(results: &Results, detector: Detector) -> Tally {
    let mut total = Tally::default();
    for tally in results
        .tallies
        .get(&detector)
        .into_iter()
        .flat_map(|t| t.values())
    {
        total.merge(tally);
    }
    total
}

fn detector_table(results: &Results) -> String {
    let mut table = String::from(
        "| detector | right | wrong | undecided | accuracy on decided | accuracy on all | cost per ticket | confusions (truth → answer ×count) |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for detector in Detector::ALL {
        let total = overall(results, detector);
        let confusions = results
            .confusions
            .get(&detector)
            .map(|c| {
                let mut list: Vec<_> = c.iter().collect();
                // Commonest first, then by name, so the list reads the same each run.
                list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                list.iter()
                    .map(|((truth, answer), count)| format!("{truth} → {answer} ×{count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|list| !list.is_empty())
            .unwrap_or_else(|| "none".into());
        let cost = results.cost.get(&detector).copied().unwrap_or_default();
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {:.3} | {:.1} µs | {confusions} |",
            detector.name(),
            total.right,
            total.wrong,
            total.undecided,
            ratio(total.precision()),
            total.accuracy(),
            cost.as_secs_f64() * 1e6,
        );
    }
    table
}

/// The sentences under the tables, drawn from the numbers.
fn findings(results: &Results) -> String {
    let product = overall(results, Detector::Product);
    let raw = overall(results, Detector::WhatlangRaw);
    let stop = overall(results, Detector::Stopwords);
    let share = |n: usize| 100.0 * n as f64 / product.texts.max(1) as f64;
    let saved = results
        .right_where_undecided
        .get(&Detector::WhatlangRaw)
        .copied()
        .unwrap_or_default();
    let mut text = format!(
        "The product decided {} of {} texts and was wrong on {} ({:.1}% of its decisions); it left \
         {} undecided ({:.0}%): {} for having fewer than {MIN_LANGUAGE_LETTERS} letters and {} \
         because whatlang did not call its answer reliable. ",
        product.decided(),
        product.texts,
        product.wrong,
        100.0 * product.wrong as f64 / product.decided().max(1) as f64,
        product.undecided,
        share(product.undecided),
        results.too_short,
        results.unsure,
    );
    let _ = write!(
        text,
        "whatlang's raw answer decides every text and is wrong on {} ({:.0}%); on the {} texts \
         the product leaves undecided it is right on {saved}, so the length and reliability \
         rules trade {saved} right answers for {} fewer wrong ones. The stopword baseline, which \
         only knows the sample's twelve languages (an advantage whatlang's 69 do not have), is \
         right on {:.1}% of all texts and wrong on {}. ",
        raw.wrong,
        100.0 * raw.wrong as f64 / raw.texts.max(1) as f64,
        product.undecided,
        raw.wrong.saturating_sub(product.wrong),
        100.0 * stop.accuracy(),
        stop.wrong,
    );
    // Chinese and Japanese write a word in one or two characters, so a minimum counted in
    // letters asks far more of them than of alphabetic scripts.
    let undecided_share = |cjk: bool| {
        let mut tally = Tally::default();
        for (code, t) in results
            .tallies
            .get(&Detector::Product)
            .into_iter()
            .flatten()
        {
            if matches!(*code, "cmn" | "jpn") == cjk {
                tally.merge(t);
            }
        }
        (tally.undecided, tally.texts)
    };
    let ((cjk_undecided, cjk), (other_undecided, other)) =
        (undecided_share(true), undecided_share(false));
    let percent = |part: usize, whole: usize| 100.0 * part as f64 / whole.max(1) as f64;
    if cjk > 0 && percent(cjk_undecided, cjk) > percent(other_undecided, other) {
        let _ = write!(
            text,
            "Chinese and Japanese texts are left undecided more often ({cjk_undecided} of {cjk}, \
             {:.0}%) than the others ({other_undecided} of {other}, {:.0}%): the minimum counts \
             letters, and a Han or kana character carries about what a whole word does in an \
             alphabetic script. ",
            percent(cjk_undecided, cjk),
            percent(other_undecided, other),
        );
    }
    if results
        .product_wrong
        .iter()
        .any(|(truth, answer, _)| *answer == "eng" && matches!(*truth, "rus" | "jpn" | "cmn"))
    {
        text.push_str(
            "The wrong decisions that read a Russian, Japanese or Chinese ticket as English are \
             tickets with an English log line: whatlang first picks the script with the most \
             characters and only then the language within it, so a few dozen Latin letters of \
             log outvote a short sentence in another script. ",
        );
    }
    if !results.product_wrong.is_empty() {
        text.push_str("The product's wrong decisions: ");
        let list: Vec<String> = results
            .product_wrong
            .iter()
            .map(|(truth, answer, start)| format!("{truth} → {answer} on `{start}`"))
            .collect();
        text.push_str(&list.join("; "));
        text.push_str(". ");
    }
    text.push_str(
        "A wrong decision is the costly error here (a ticket in a served language sent to review \
         as unsupported, or the reverse), an undecided one only means the ticket is tagged as \
         if the project served every language.",
    );
    text
}

fn section(
    args: &LanguagesBench,
    sample: &[Labelled],
    results: &Results,
    load: (&str, &str),
) -> String {
    let languages = sample
        .iter()
        .map(|l| l.language.code())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    format!(
        "## Language detection\n\nMeasured {date} on {machine} (load average {before} before, \
         {after} after), with:\n\n```sh\n{command}\n```\n\n\
         The sample, `{path}`, holds {texts} support-ticket texts in {languages} languages written \
         by hand for this project: short ones of a few words, sentences, paragraphs, and texts with \
         logs, stack traces or English product names inside. Each detector reads a text as tagging \
         does, as `datasets::ticket::model_text` of its body (traces cut to a marker and their \
         first lines). The product is `datasets::language::detect_language`, the function the \
         decider calls: no decision under {MIN_LANGUAGE_LETTERS} letters in the first \
         {LANGUAGE_SAMPLE_BYTES} bytes, nor when whatlang does not call its answer reliable. The \
         baselines, in the same run: whatlang's raw answer on the same bytes, and a count of each \
         language's 14–30 commonest function words (written from general knowledge, not from the \
         sample; one token per character for Chinese and Japanese; no decision on no hit or a \
         tie). \"Accuracy on all\" counts an undecided text as not right. The cost is the median \
         of {TIMED_PASSES} passes over the sample, divided by its texts.\n\n\
         {per_language}\n{detectors}\n{findings}\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine = machine(),
        before = load.0,
        after = load.1,
        command = command(),
        path = args.sample.display(),
        texts = sample.len(),
        per_language = per_language_table(results),
        detectors = detector_table(results),
        findings = findings(results),
    )
}

/// The command that made the table, with the profile it was built in.
fn command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if cfg!(debug_assertions) {
        format!(
            "cargo run --bin bench -- {}   # dev profile (whatlang is optimised in it)",
            args.join(" ")
        )
    } else {
        format!("cargo run --release --bin bench -- {}", args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn language(code: &str) -> Language {
        Language::parse(code).expect("a known code")
    }

    #[test]
    fn the_committed_sample_parses_with_valid_codes_and_enough_texts() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/language-sample.tsv");
        let file = std::fs::read_to_string(path).expect("the sample is in the repository");
        let sample = parse_sample(&file).expect("the sample parses");
        let mut per_language: BTreeMap<&str, usize> = BTreeMap::new();
        for labelled in &sample {
            *per_language.entry(labelled.language.code()).or_default() += 1;
        }
        for code in [
            "eng", "deu", "fra", "spa", "por", "ita", "nld", "pol", "rus", "jpn", "cmn", "tur",
        ] {
            let count = per_language.get(code).copied().unwrap_or_default();
            assert!(
                count >= 10,
                "{code} has {count} texts, the brief asks for about ten"
            );
        }
        // Some texts are short on purpose, some carry line breaks (logs).
        assert!(sample.iter().any(|l| l.text.chars().count() < 20));
        assert!(sample.iter().any(|l| l.text.contains('\n')));
        assert!(sample.iter().all(|l| !l.text.contains("\\n")));
    }

    #[test]
    fn malformed_sample_lines_are_refused_with_their_line_number() {
        let header = "# comment\nlanguage\ttext\n";
        let parsed = parse_sample(&format!("{header}deu\tZeile eins\\nZeile zwei \\\\ Ende\n"))
            .expect("valid");
        assert_eq!(
            parsed,
            vec![Labelled {
                language: language("deu"),
                text: "Zeile eins\nZeile zwei \\ Ende".into()
            }]
        );
        for (bad, why) in [
            ("de\tHallo Welt", "line 3"),
            ("deu Hallo Welt", "no tab"),
            ("deu\tHallo\tWelt", "two columns"),
            ("DEU\tHallo Welt", "lower case"),
            ("deu\tHallo \\t Welt", "escape"),
            ("deu\t  ", "empty"),
        ] {
            let error = parse_sample(&format!("{header}{bad}\n")).expect_err(bad);
            assert!(format!("{error:#}").contains(why), "{bad}: {error:#}");
        }
        assert!(parse_sample("eng\tno header\n").is_err());
        assert!(parse_sample("# only a comment\n").is_err());
    }

    #[test]
    fn stopwords_pick_the_language_with_most_hits_and_refuse_ties() {
        for (code, text) in [
            (
                "eng",
                "I cannot open the invoice and it is not in my account",
            ),
            (
                "deu",
                "Ich kann die Rechnung nicht öffnen und sie ist auch nicht im Konto",
            ),
            (
                "fra",
                "Je ne peux pas ouvrir la facture et elle est pas dans mon compte",
            ),
            ("rus", "Я не могу открыть счёт, и его нет в кабинете"),
            ("jpn", "請求書を開くことができません"),
            ("cmn", "我打不开这个发票，请帮我看一下"),
        ] {
            assert_eq!(stopword_language(text), Some(language(code)), "{text}");
        }
        // No function word at all, and a tie between two languages: no decision.
        assert_eq!(stopword_language("Invoice 4711 ERROR timeout"), None);
        assert_eq!(stopword_language("und the"), None);
        assert_eq!(stopword_language(""), None);
    }

    #[test]
    fn cjk_characters_are_single_tokens_and_words_are_lower_cased() {
        assert_eq!(
            tokens("Der Login-Fehler: 请求 ログ"),
            ["der", "login", "fehler", "请", "求", "ロ", "グ"]
        );
    }

    #[test]
    fn tallies_count_undecided_texts_as_not_right() {
        let (eng, deu) = (language("eng"), language("deu"));
        let mut tally = Tally::default();
        tally.add(eng, Some(eng));
        tally.add(eng, Some(deu));
        tally.add(eng, None);
        tally.add(eng, Some(eng));
        assert_eq!((tally.right, tally.wrong, tally.undecided), (2, 1, 1));
        assert_eq!(tally.precision(), Some(2.0 / 3.0));
        assert_eq!(tally.accuracy(), 0.5);
        assert_eq!(Tally::default().precision(), None);
    }

    #[test]
    fn measuring_a_small_sample_tallies_every_detector() {
        let sample = vec![
            Labelled {
                language: language("deu"),
                text: "Seit dem letzten Update können wir keine Rechnungen mehr herunterladen. Es erscheint nur ein Fehler.".into(),
            },
            Labelled {
                language: language("eng"),
                text: "Thanks!".into(),
            },
        ];
        let results = measure(&sample);
        let product = overall(&results, Detector::Product);
        assert_eq!((product.right, product.undecided), (1, 1));
        assert_eq!((results.too_short, results.unsure), (1, 0));
        for detector in Detector::ALL {
            assert_eq!(overall(&results, detector).texts, 2);
        }
    }
}
