//! The demo data: the default taxonomy of a new demo project and a seeded generator of
//! synthetic support tickets. Every sentence here is written for this project, so the demo
//! carries no third-party text and the same seed always gives the same tickets.

mod groups;

pub use groups::{DemoGroup, generate_grouped, grouped_taxonomy};

use crate::names::TagName;
use crate::tag::{KeywordRules, NewTag};
use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use serde_json::json;

/// The default taxonomy every new demo project gets.
pub fn default_taxonomy() -> Vec<NewTag> {
    TAGS.iter()
        .filter_map(|text| {
            let name = TagName::parse(text.name).ok()?;
            Some(NewTag {
                name,
                description: text.description.to_string(),
                color: text.color.to_string(),
                keywords: KeywordRules {
                    include: text.include.iter().map(|p| p.to_string()).collect(),
                    exclude: Vec::new(),
                },
                group: None,
            })
        })
        .collect()
}

/// One generated ticket before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoTicket {
    /// `DEMO-00001` style, unique, numbered in creation order.
    pub external_id: String,
    pub subject: String,
    pub body: String,
    /// Requester, product, priority and channel, as a help desk export would carry them.
    pub metadata: serde_json::Value,
    /// Within the 180 days before `now`: busier lately, quieter at weekends, mostly in
    /// office hours.
    pub created_at: DateTime<Utc>,
    /// Empty for the unlabelled tickets a model is meant to tag.
    pub tags: Vec<TagName>,
}

/// `count` tickets. The same (count, seed) always gives the same texts, tags, metadata and
/// order, whatever `now` is: `now` only places them in time. A model trained on them is
/// then the same on every day of the week, and so are the tests that train one.
pub fn generate(count: usize, seed: u64, now: DateTime<Utc>) -> Vec<DemoTicket> {
    drawn_tickets(count, seed, now)
        .into_iter()
        .map(|drawn| drawn.ticket)
        .collect()
}

/// A generated ticket with what the generator knows and the labels do not say: the tags it
/// was written about (before a hurried agent's mistakes) and the customer's plan.
struct Drawn {
    ticket: DemoTicket,
    truth: Vec<usize>,
    plan: &'static str,
}

fn drawn_tickets(count: usize, seed: u64, now: DateTime<Utc>) -> Vec<Drawn> {
    let names = tag_names();
    let mut rng = Rng::new(seed);
    let calendar = Calendar::new(now);
    let mut tickets: Vec<(f64, Drawn)> = (0..count)
        .map(|_| one_ticket(&mut rng, &names, &calendar))
        .collect();
    // Ids follow creation order, as a real help desk numbers its tickets. Sorting by the
    // age drawn (not by the timestamp) keeps the order free of the calendar; the placing
    // in time is monotone, so it is the timestamps' order too.
    tickets.sort_by(|(a, _), (b, _)| b.total_cmp(a));
    tickets
        .into_iter()
        .enumerate()
        .map(|(index, (_, mut drawn))| {
            drawn.ticket.external_id = format!("DEMO-{:05}", index + 1);
            drawn
        })
        .collect()
}

/// The phrase tables of one tag. Keyword phrases appear only in their own tag's sentences, so
/// the keyword rules of the demo taxonomy fire on the right tickets.
struct TagText {
    name: &'static str,
    description: &'static str,
    color: &'static str,
    include: &'static [&'static str],
    /// Relative frequency as the main tag: uneven, as in real help desks.
    weight: f64,
    subjects: &'static [&'static str],
    problems: &'static [&'static str],
    tried: &'static [&'static str],
}

const BUG: usize = 0;
const FEATURE: usize = 1;
const PERFORMANCE: usize = 2;
const QUESTION: usize = 3;
const BILLING: usize = 4;
const ACCOUNT: usize = 5;
const INTEGRATION: usize = 6;
const DOCS: usize = 7;
const SECURITY: usize = 8;
const DATA_LOSS: usize = 9;

const TAGS: [TagText; 10] = [
    TagText {
        name: "Bug",
        description: "Something in the product behaves wrongly or crashes.",
        color: "#dc2626",
        include: &["crash", "stack trace", "regression"],
        weight: 22.0,
        subjects: &[
            "{product} crashes when I open {feature}",
            "Error {error} on {feature}",
            "{feature} button does nothing in {browser}",
            "Broken layout in {product} after the latest update",
            "{product}: {feature} shows wrong totals",
            "Getting {error} every time I save",
            "Regression in {feature} since last release",
            "{product} keeps crashing on {os}",
        ],
        problems: &[
            "Whenever I open {feature} in {product}, the page goes blank and the console shows {error}.",
            "Since the update on {date}, clicking save in {feature} throws {error}.",
            "The {product} app crashes as soon as I tap {feature} on {os}.",
            "The totals on {feature} are wrong: it shows {amount} but the line items add up to less.",
            "In {browser} the dropdown in {feature} opens behind the sidebar, so I cannot pick anything.",
            "This looks like a regression, because {feature} worked fine until last week.",
            "I get a stack trace mentioning {error} when I submit the form in {product}.",
            "Dates in {feature} are shifted by one day for everyone on our team.",
        ],
        tried: &[
            "I cleared the cache and tried a private window in {browser}, same result.",
            "It happens on {os} and on a colleague's laptop too, so it is not just my machine.",
            "I reinstalled the app but it still crashes.",
            "Steps to reproduce: open {feature}, change any field, press save.",
        ],
    },
    TagText {
        name: "Feature Request",
        description: "A suggestion for something the product does not do yet.",
        color: "#2563eb",
        include: &["feature request", "would be great if", "please add"],
        weight: 12.0,
        subjects: &[
            "Feature request: dark mode for {product}",
            "Please add bulk edit to {feature}",
            "Would love recurring reminders in {product}",
            "Suggestion: a print view for {feature}",
            "Can you add keyboard shortcuts?",
            "Idea for {feature}",
            "Request: custom fields in {product}",
        ],
        problems: &[
            "It would be great if {feature} let us edit {n} items at once instead of one by one.",
            "Please add a dark mode to {product}; half of our team works late and the white screen is harsh.",
            "We would really like custom fields on {feature}, for example a cost centre.",
            "A feature request from our team: let us schedule exports of {feature} every Monday.",
            "Could you consider adding keyboard shortcuts to {product}? Power users would love it.",
            "Being able to filter {feature} by owner would save us a lot of clicks.",
            "It would help a lot to have a read-only role for our auditors.",
        ],
        tried: &[
            "Right now we work around it with a spreadsheet, which is clumsy.",
            "I checked the roadmap page but did not see anything like this.",
            "Several of our {n} users asked me for this, so it would make a real difference.",
        ],
    },
    TagText {
        name: "Performance Issue",
        description: "The product works but is slow, laggy or times out.",
        color: "#f59e0b",
        include: &["slow", "timeout", "takes forever"],
        weight: 9.0,
        subjects: &[
            "{product} is very slow today",
            "{feature} takes forever to load",
            "Timeout when opening {feature}",
            "Dashboard loading slowly since {date}",
            "Search in {product} is sluggish",
            "Page load over {secs} seconds",
            "Everything is laggy in {browser}",
        ],
        problems: &[
            "{feature} takes about {secs} seconds to load, where it used to be almost instant.",
            "The whole of {product} has become slow since {date}, especially in the mornings.",
            "Opening {feature} with more than {n} hundred rows ends in a timeout.",
            "Typing in the search box lags so badly that letters appear a second after I type them.",
            "Reports that took a few seconds now take forever and the browser offers to stop the page.",
            "The spinner on {feature} keeps going and the request times out after {secs} seconds.",
            "Scrolling through {feature} on {os} is choppy and uses a lot of CPU.",
        ],
        tried: &[
            "Our internet connection is fine; other sites load quickly.",
            "I tried {browser} and another browser, both equally sluggish.",
            "It gets a bit better late in the evening, which makes me think it is load on your side.",
        ],
    },
    TagText {
        name: "Question",
        description: "A how-to question about using the product.",
        color: "#10b981",
        include: &["quick question", "how do i", "is there a way to"],
        weight: 20.0,
        subjects: &[
            "Quick question about {feature}",
            "How do I change my {feature} settings?",
            "Is there a way to share {feature} with a client?",
            "Question about user roles",
            "How to move items between projects?",
            "Where can I find {feature}?",
            "Can I use {product} offline?",
        ],
        problems: &[
            "Quick question: how do I share {feature} with someone outside our company?",
            "How do I move items from one project to another without recreating them?",
            "Is there a way to change the default currency in {product}?",
            "Where do I find the setting that controls who sees {feature}?",
            "Can several people edit {feature} at the same time, or does one person lock it?",
            "How do I add a colleague as an admin in {product}?",
            "Is it possible to use {product} without an internet connection?",
        ],
        tried: &[
            "I looked around the settings page but could not find it.",
            "Sorry if this is obvious, I am new to {product}.",
            "A colleague thought it was possible but neither of us knows how.",
        ],
    },
    TagText {
        name: "Billing",
        description: "Charges, invoices, refunds and subscription plans.",
        color: "#8b5cf6",
        include: &["invoice", "refund", "charged twice"],
        weight: 10.0,
        subjects: &[
            "Charged twice this month",
            "Question about invoice {inv}",
            "Refund request for {plan} plan",
            "Wrong amount on my invoice",
            "Card declined but subscription still active?",
            "Need VAT number on invoices",
            "Downgrade to {plan} not reflected in billing",
        ],
        problems: &[
            "Our card was charged twice on {date}, {amount} each time.",
            "The latest invoice shows {amount}, but we are on the {plan} plan which should cost less.",
            "We downgraded to {plan} last month and would like a refund of the difference.",
            "Please put our VAT number on the invoices; finance cannot book them without it.",
            "We were billed for {n} seats although only a handful of people use {product}.",
            "Our card payment failed but the subscription still shows as active, and I fear a surprise charge.",
            "Could you send a corrected invoice with our new company address?",
        ],
        tried: &[
            "I attached a screenshot of the bank statement.",
            "The billing page only shows one of the charges in the payment history.",
            "Our accountant needs this sorted before the end of the month.",
        ],
    },
    TagText {
        name: "Account Access",
        description: "Signing in, passwords, two-factor codes and lost access.",
        color: "#ec4899",
        include: &["locked out", "password reset", "can't log in"],
        weight: 9.0,
        subjects: &[
            "Locked out of my account",
            "Password reset email never arrives",
            "Can't log in after changing my email",
            "Two-factor code not accepted",
            "Login link expired",
            "Lost access to admin account",
            "SSO login loops back to sign-in page",
        ],
        problems: &[
            "I am locked out of my account after too many attempts and the unlock email never came.",
            "The password reset email never arrives, not even in the spam folder.",
            "I can't log in since I changed my email address; it says the account does not exist.",
            "My two-factor code is rejected every time, although the clock on my phone is correct.",
            "Our only admin left the company, so nobody can manage users in {product} any more.",
            "Single sign-on sends me back to the sign-in page in an endless loop.",
            "The login link says it has expired even when I click it right away.",
        ],
        tried: &[
            "I tried signing in from {browser} and from my phone.",
            "I already checked that caps lock is off and the address is spelled right.",
            "My colleagues can still get in, it is only my account.",
        ],
    },
    TagText {
        name: "Integration",
        description: "Connections to other tools: the API, webhooks and connectors.",
        color: "#06b6d4",
        include: &["webhook", "integration", "oauth"],
        weight: 7.0,
        subjects: &[
            "{app} integration stopped pushing updates",
            "Webhook not firing for new items",
            "DataSync API returns {error}",
            "Cannot connect {product} to {app}",
            "OAuth error when connecting {app}",
            "Duplicate entries from {app} integration",
            "API key rejected",
        ],
        problems: &[
            "The {app} integration stopped pushing updates on {date}; the last event in the log is from that morning.",
            "Our webhook endpoint no longer receives events when a new item is created in {product}.",
            "Calls to the DataSync API return {error} even with a freshly generated API key.",
            "Connecting {app} fails at the OAuth step with a generic error page.",
            "Every record coming from {app} shows up twice after the integration runs.",
            "The field mapping between {app} and {product} no longer includes our custom fields.",
            "The {app} connector says authorised but no data flows in either direction.",
        ],
        tried: &[
            "I disconnected and reconnected {app}, no change.",
            "Our developer checked the request headers and they match your API reference.",
            "Other webhooks on our side work, so the endpoint itself is reachable.",
        ],
    },
    TagText {
        name: "Documentation",
        description: "Help articles, guides and API reference that are wrong or missing.",
        color: "#84cc16",
        include: &["documentation", "help article", "the docs"],
        weight: 5.0,
        subjects: &[
            "Docs for {feature} are out of date",
            "Broken link in the help center",
            "Documentation missing for the export format",
            "API reference example does not work",
            "Help article shows old screenshots",
            "Typo in the getting started guide",
        ],
        problems: &[
            "The help article for {feature} still shows the old menu, so the steps no longer match.",
            "The documentation for the export format does not say which date format is used.",
            "The code example in the docs uses a parameter that the API rejects.",
            "Several links in the getting started guide lead to a 404 page.",
            "The docs say {feature} is on the {plan} plan, but the pricing page says otherwise.",
            "There is no documentation at all about rate limits, which we need for planning.",
        ],
        tried: &[
            "I searched the help center for a newer version of the page but found nothing.",
            "A changelog entry when a page is rewritten would help readers like me.",
        ],
    },
    TagText {
        name: "Security",
        description: "Suspected attacks, vulnerabilities and unwanted access to data.",
        color: "#111827",
        include: &["phishing", "vulnerability", "suspicious login"],
        weight: 2.0,
        subjects: &[
            "Possible phishing email pretending to be you",
            "Suspicious login from unknown location",
            "Security vulnerability report",
            "Former employee still has access?",
            "Session not expiring after logout",
            "Shared link exposes other projects",
        ],
        problems: &[
            "I received a phishing email with your logo that asks for my {product} password.",
            "Our audit log shows a suspicious login from a country where we have no staff.",
            "I think I found a vulnerability: the shared link for {feature} exposes data from other projects.",
            "After I log out, the back button still shows the dashboard with all our data.",
            "A former employee seems to still have an active session, even though we removed the user.",
            "We would like to report a security issue privately; what is the right channel?",
        ],
        tried: &[
            "We already rotated our passwords as a precaution.",
            "I have not clicked anything in that email and forwarded it to our IT team.",
        ],
    },
    TagText {
        name: "Data Loss",
        description: "Records, files or history that disappeared or were destroyed.",
        color: "#f97316",
        include: &["data loss", "disappeared", "records are missing"],
        weight: 1.5,
        subjects: &[
            "All our {feature} data disappeared",
            "Items missing after the weekend",
            "Lost a week of work",
            "Deleted project - can it be restored?",
            "Records vanished overnight",
            "Attachments gone from {product}",
        ],
        problems: &[
            "All entries in {feature} from before {date} have disappeared from {product}.",
            "About {n} records are missing since last night, and nobody on our team deleted them.",
            "A week of work in {feature} is gone; the history shows nothing after {date}.",
            "A colleague deleted a project by accident; is there any way to restore it from a backup?",
            "The attachments on our items are gone and the links now show an empty page.",
        ],
        tried: &[
            "We checked the trash and the activity log, but the items are not there.",
            "This is serious data loss for us and we need it back urgently.",
        ],
    },
];

/// Sentences that fit either tag of a confusable group, as real tickets often do; they avoid
/// the keyword phrases so the rules stay precise.
const SHARED: &[(&[usize], &[&str])] = &[
    (
        &[BUG, PERFORMANCE],
        &[
            "When I click export in {feature}, nothing happens for a long while and then the page reloads.",
            "{feature} freezes for a moment whenever I switch tabs.",
        ],
    ),
    (
        &[BUG, INTEGRATION],
        &[
            "Records pushed from {app} arrive in {product} with the wrong dates.",
            "Since {date}, the numbers in {product} no longer match what {app} shows.",
        ],
    ),
    (
        &[BUG, DATA_LOSS],
        &[
            "After saving, the changes I made in {feature} were not there when I came back.",
            "Some of the items in {feature} now show empty fields.",
        ],
    ),
    (
        &[QUESTION, DOCS],
        &[
            "I could not work out from the help center how {feature} decides who gets notified.",
            "Where is it explained how {feature} handles time zones?",
        ],
    ),
    (
        &[QUESTION, FEATURE],
        &[
            "Is there any way to get {feature} to send a weekly summary?",
            "Can {feature} export straight to Excel, or is that not supported yet?",
        ],
    ),
    (
        &[BILLING, ACCOUNT, QUESTION],
        &[
            "Our subscription owner left and nobody can see the payment settings any more.",
            "Which plan do we need for {n} users, and can we pay yearly?",
        ],
    ),
    (
        &[ACCOUNT, SECURITY],
        &[
            "I got a sign-in notification for my account that I do not recognise.",
            "Someone changed the email address on my account without my knowledge.",
        ],
    ),
    (
        &[PERFORMANCE, INTEGRATION, FEATURE],
        &[
            "The nightly import from {app} now runs for hours instead of minutes.",
            "We would like {product} to talk to {app} so our sales team stops copying data by hand.",
        ],
    ),
];

/// The tag a hurried agent files a ticket under instead, by tag index; real labels disagree.
const CONFUSED_WITH: [usize; 10] = [
    PERFORMANCE,
    QUESTION,
    BUG,
    DOCS,
    ACCOUNT,
    SECURITY,
    BUG,
    QUESTION,
    ACCOUNT,
    BUG,
];

/// Plausible combinations, weighted; a ticket with several tags talks about each of them.
const PAIRS: &[(&[usize], f64)] = &[
    (&[BUG, DATA_LOSS], 3.0),
    (&[PERFORMANCE, INTEGRATION], 3.0),
    (&[QUESTION, DOCS], 3.0),
    (&[BILLING, ACCOUNT], 2.0),
    (&[FEATURE, INTEGRATION], 2.0),
    (&[BUG, PERFORMANCE], 2.0),
    (&[SECURITY, ACCOUNT], 1.5),
    (&[QUESTION, BILLING], 1.5),
    (&[BUG, INTEGRATION], 1.5),
    (&[QUESTION, FEATURE], 1.5),
];
const TRIPLES: &[(&[usize], f64)] = &[
    (&[BUG, DATA_LOSS, INTEGRATION], 1.0),
    (&[SECURITY, ACCOUNT, BILLING], 1.0),
];

/// Each product with the parts of it that customers write about.
const PRODUCTS: &[(&str, &[&str])] = &[
    (
        "Ledgerly",
        &[
            "the quote builder",
            "payment reminders",
            "PDF export",
            "the tax settings",
        ],
    ),
    (
        "TeamBoard",
        &[
            "the kanban board",
            "the calendar view",
            "task comments",
            "bulk edit",
        ],
    ),
    (
        "DataSync API",
        &[
            "the sync jobs",
            "the field mapping",
            "the bulk import endpoint",
            "the event log",
        ],
    ),
    (
        "Mobile app",
        &[
            "push notifications",
            "offline mode",
            "photo uploads",
            "the home screen",
        ],
    ),
    (
        "Reports",
        &[
            "the dashboard",
            "CSV export",
            "scheduled reports",
            "the chart builder",
        ],
    ),
    (
        "Admin console",
        &[
            "user management",
            "the audit log",
            "role settings",
            "the search bar",
        ],
    ),
];
const ERRORS: &[&str] = &[
    "ERR_500",
    "E-1042",
    "HTTP 502",
    "error 0x80070005",
    "TypeError: cannot read properties of undefined",
    "code 4031",
    "HTTP 422",
];
const BROWSERS: &[&str] = &["Chrome", "Firefox", "Safari", "Edge"];
const SYSTEMS: &[&str] = &["Windows 11", "macOS", "iOS 17", "Android 14", "Ubuntu"];
const APPS: &[&str] = &[
    "Slack",
    "Salesforce",
    "Zapier",
    "HubSpot",
    "Google Sheets",
    "Jira",
    "Shopify",
];
const PLANS: &[&str] = &["Starter", "Team", "Business", "Enterprise"];
const AMOUNTS: &[u32] = &[19, 29, 49, 99, 129, 249, 480];

/// Sentences that fit any tag, so words alone never separate the tags perfectly.
const OPENERS: &[&str] = &[
    "We have been using {product} for about {n} months now.",
    "I am writing on behalf of our operations team.",
    "This is affecting {n} people on our team.",
    "Not sure if this is the right place to ask.",
    "Hope you can help with this one.",
];
const VAGUE_SUBJECTS: &[&str] = &[
    "Problem with {product}",
    "Help needed",
    "Something is off",
    "Urgent!!",
    "Issue since this morning",
    "{product} not working properly",
    "Please help",
];
const VAGUE_PROBLEMS: &[&str] = &[
    "Something is not right with {feature} since this morning and I am not sure what changed.",
    "{product} is behaving strangely and my team is stuck.",
    "We have a problem with {feature}, can someone call me?",
    "Things are not working the way they did last week.",
];
const CONNECTORS: &[&str] = &[
    "Also: ",
    "One more thing: ",
    "Possibly related: ",
    "And a second problem: ",
];
const GREETINGS: &[&str] = &[
    "Hi,",
    "Hello,",
    "Hi team,",
    "Hello support,",
    "Good morning,",
    "Dear support team,",
    "Hey there,",
];
const CLOSINGS: &[&str] = &[
    "Thanks in advance.",
    "Thank you for your help.",
    "Looking forward to hearing from you.",
    "Any help is appreciated.",
    "Please let me know if you need more details.",
];
const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Tom", "Lena", "Ravi", "Sofia", "Daniel", "Yuki", "Omar", "Grace",
    "Pedro", "Nina", "Felix", "Chloe", "Samuel",
];
const LAST_NAMES: &[&str] = &[
    "Keller", "Okafor", "Lind", "Moreau", "Tanaka", "Novak", "Silva", "Brennan", "Haddad",
    "Fischer", "Costa", "Walsh", "Petrov", "Mensah",
];
const COMPANIES: &[&str] = &[
    "Acme Logistics",
    "Northwind Dental",
    "Bluebird Studio",
    "Harbor Legal",
    "Greenfield Farms",
    "Quartz Analytics",
];

/// Tickets within this many days of `now` show the rising Performance Issue trend.
const TREND_DAYS: i64 = 21;
const HISTORY_DAYS: i64 = 180;

/// The names of `TAGS`, parsed once; a name that failed to parse would only drop its tag.
fn tag_names() -> Vec<TagName> {
    TAGS.iter()
        .filter_map(|text| TagName::parse(text.name).ok())
        .collect()
}

/// SplitMix64: tiny, fast, and stable across Rust releases, unlike std's hashers.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_de30_7ac5_0001)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0 so callers need no special case.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (index, weight) in weights.iter().enumerate() {
            if target < *weight {
                return index;
            }
            target -= weight;
        }
        weights.len().saturating_sub(1)
    }
}

/// What stays the same throughout one ticket, so subject and body talk about the same thing.
struct Context {
    product: &'static str,
    feature: &'static str,
    app: &'static str,
    plan: &'static str,
}

impl Context {
    fn slot(&self, key: &str, rng: &mut Rng) -> String {
        match key {
            "product" => self.product.to_string(),
            "feature" => self.feature.to_string(),
            "app" => self.app.to_string(),
            "plan" => self.plan.to_string(),
            "error" => rng.pick(ERRORS).to_string(),
            "browser" => rng.pick(BROWSERS).to_string(),
            "os" => rng.pick(SYSTEMS).to_string(),
            "amount" => format!("${}.00", rng.pick(AMOUNTS)),
            "n" => (2 + rng.below(39)).to_string(),
            "secs" => (8 + rng.below(88)).to_string(),
            "inv" => format!("INV-{}", 10_000 + rng.below(90_000)),
            // A day of the month, not a calendar date: the text must not change with the
            // day the tickets are generated on.
            "date" => ordinal(1 + rng.below(28)),
            other => format!("{{{other}}}"),
        }
    }

    /// Fills the `{slot}`s of a template; the result starts with a capital, as a slot such
    /// as `{feature}` may open the sentence.
    fn fill(&self, template: &str, rng: &mut Rng) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('}') else {
                rest = &rest[start..];
                break;
            };
            out.push_str(&self.slot(&after[..end], rng));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        let mut chars = out.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => out,
        }
    }
}

/// One ticket and its age as a share of the history (0 now, 1 the oldest).
fn one_ticket(rng: &mut Rng, names: &[TagName], calendar: &Calendar) -> (f64, Drawn) {
    let age = draw_age(rng);
    let created_at = calendar.place(age);
    let recent = age < TREND_DAYS as f64 / HISTORY_DAYS as f64;
    let tags = choose_tags(rng, recent);
    let primary = tags[0];

    let (product, features) = if primary == INTEGRATION && rng.chance(0.5) {
        // The API is where most integration trouble starts.
        PRODUCTS[2]
    } else {
        rng.pick(PRODUCTS)
    };
    let context = Context {
        product,
        feature: rng.pick(features),
        app: rng.pick(APPS),
        plan: rng.pick(PLANS),
    };
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let channel = ["email", "web", "chat"][rng.weighted(&[55.0, 30.0, 15.0])];
    // Some tickets say too little to tell their tag, others lead with a sentence that fits
    // several; a human still filed them somewhere.
    let lead = match rng.unit() {
        draw if draw < 0.08 => Lead::Vague,
        draw if draw < 0.35 => Lead::Shared,
        _ => Lead::Clear,
    };
    let vague_subject = match lead {
        Lead::Vague => true,
        Lead::Shared => rng.chance(0.5),
        Lead::Clear => rng.chance(0.08),
    };
    let mut subject = if vague_subject {
        context.fill(rng.pick(VAGUE_SUBJECTS), rng)
    } else {
        context.fill(rng.pick(TAGS[primary].subjects), rng)
    };
    let mut body = compose_body(rng, &context, &tags, lead, channel, first, last);

    if rng.chance(0.10) {
        body = add_typo(&body, rng);
        if rng.chance(0.3) {
            subject = add_typo(&subject, rng);
        }
    }
    let style = rng.unit();
    if style < 0.06 {
        subject = subject.to_lowercase();
    } else if style < 0.10 {
        subject = subject.to_uppercase();
    }
    let prefix = rng.unit();
    if prefix < 0.08 {
        subject = format!("Re: {subject}");
    } else if prefix < 0.11 {
        subject = format!("Fwd: {subject}");
    }

    let urgent_kind = matches!(primary, SECURITY | DATA_LOSS | ACCOUNT);
    let calm_kind = matches!(primary, QUESTION | FEATURE | DOCS);
    let priority_weights: [f64; 4] = if urgent_kind {
        [5.0, 30.0, 40.0, 25.0]
    } else if calm_kind {
        [45.0, 45.0, 8.0, 2.0]
    } else {
        [25.0, 50.0, 18.0, 7.0]
    };
    let priority = ["low", "normal", "high", "urgent"][rng.weighted(&priority_weights)];
    let metadata = json!({
        "requester": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        "product": product,
        "priority": priority,
        "channel": channel,
    });

    // Unlabelled tickets are written the same way, so the model meets the same kind of text.
    let labelled = !rng.chance(0.15);
    let truth = tags.clone();
    let mut tags = tags;
    if rng.chance(0.05) && !tags.contains(&CONFUSED_WITH[primary]) {
        tags[0] = CONFUSED_WITH[primary];
    }
    // Agents often file a two-problem ticket under the first problem only.
    if tags.len() > 1 && rng.chance(0.1) {
        tags.pop();
    }
    let tags = if labelled {
        tags.iter()
            .filter_map(|&index| names.get(index).cloned())
            .collect()
    } else {
        Vec::new()
    };
    (
        age,
        Drawn {
            ticket: DemoTicket {
                external_id: String::new(),
                subject,
                body,
                metadata,
                created_at,
                tags,
            },
            truth,
            plan: context.plan,
        },
    )
}

/// A ticket's age as a share of the history, drawn without looking at a calendar: more
/// tickets lately (half uniform, half with a density falling linearly with age, as a help
/// desk that has grown).
fn draw_age(rng: &mut Rng) -> f64 {
    if rng.chance(0.5) {
        rng.unit()
    } else {
        1.0 - rng.unit().sqrt()
    }
}

/// "1st", "2nd", "23rd".
fn ordinal(day: usize) -> String {
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("the {day}{suffix}")
}

/// Places ages in the `HISTORY_DAYS` before `now` by a monotone map, so older stays older:
/// each day gets a share of the history by its weight (weekends 0.4 of a weekday), and
/// within a day most of the weight falls in office hours.
struct Calendar {
    now: DateTime<Utc>,
    /// The start of each day, newest first (today's is midnight before `now`).
    days: Vec<DateTime<Utc>>,
    /// The running total of the days' weights, newest first, normalised to end at 1.
    cumulative: Vec<f64>,
}

/// Within a day: (hour the span ends, share of the day's tickets in it).
const DAY_SHAPE: [(f64, f64); 3] = [(8.0, 0.067), (18.0, 0.883), (24.0, 0.05)];

impl Calendar {
    fn new(now: DateTime<Utc>) -> Self {
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |midnight| midnight.and_utc());
        let days: Vec<DateTime<Utc>> = (0..HISTORY_DAYS)
            .map(|back| today - Duration::days(back))
            .collect();
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = days
            .iter()
            .map(|day| {
                total += if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                    0.4
                } else {
                    1.0
                };
                total
            })
            .collect();
        for value in &mut cumulative {
            *value /= total;
        }
        Self {
            now,
            days,
            cumulative,
        }
    }

    /// The moment of a ticket of this age (0 now, 1 the oldest), never after `now`.
    fn place(&self, age: f64) -> DateTime<Utc> {
        let age = age.clamp(0.0, 1.0);
        let index = self
            .cumulative
            .partition_point(|&upto| upto < age)
            .min(self.days.len() - 1);
        let before = if index == 0 {
            0.0
        } else {
            self.cumulative[index - 1]
        };
        let width = (self.cumulative[index] - before).max(f64::MIN_POSITIVE);
        // How far back into the day: 0 at its end, 1 at its start.
        let back = ((age - before) / width).clamp(0.0, 1.0);
        let mut hours = Self::hour_of_day(1.0 - back);
        if index == 0 {
            // Today has only had the hours until `now`.
            let elapsed = (self.now - self.days[0]).num_milliseconds() as f64 / 3_600_000.0;
            hours *= elapsed / 24.0;
        }
        let at = self.days[index] + Duration::milliseconds((hours * 3_600_000.0) as i64);
        at.min(self.now)
    }

    /// The hour by which this share of a day's tickets has come in.
    fn hour_of_day(share: f64) -> f64 {
        let mut start_hour = 0.0;
        let mut below = 0.0;
        for (end_hour, weight) in DAY_SHAPE {
            if share <= below + weight {
                return start_hour + (share - below) / weight * (end_hour - start_hour);
            }
            below += weight;
            start_hour = end_hour;
        }
        24.0
    }
}

fn choose_tags(rng: &mut Rng, recent: bool) -> Vec<usize> {
    // The dashboard should show something: performance complaints climb in the last weeks.
    let boost = |tags: &[usize]| {
        if recent && tags.contains(&PERFORMANCE) {
            3.5
        } else {
            1.0
        }
    };
    let draw = rng.unit();
    let table = if draw < 0.02 {
        TRIPLES
    } else if draw < 0.22 {
        PAIRS
    } else {
        let weights: Vec<f64> = TAGS
            .iter()
            .enumerate()
            .map(|(index, text)| text.weight * boost(&[index]))
            .collect();
        return vec![rng.weighted(&weights)];
    };
    let weights: Vec<f64> = table.iter().map(|(tags, w)| w * boost(tags)).collect();
    let mut tags = table[rng.weighted(&weights)].0.to_vec();
    // Either problem may be the one the customer leads with.
    if rng.chance(0.4) {
        tags.swap(0, 1);
    }
    tags
}

/// How the body opens its account of the main problem.
#[derive(Clone, Copy)]
enum Lead {
    /// With a sentence only the main tag uses.
    Clear,
    /// With a sentence shared by a group of confusable tags.
    Shared,
    /// With a sentence that could be about anything.
    Vague,
}

fn compose_body(
    rng: &mut Rng,
    context: &Context,
    tags: &[usize],
    lead: Lead,
    channel: &str,
    first: &str,
    last: &str,
) -> String {
    let primary = &TAGS[tags[0]];
    let mut sentences = Vec::new();
    if tags.len() < 3 && rng.chance(0.25) {
        sentences.push(context.fill(rng.pick(OPENERS), rng));
    }
    let shared: Vec<&[&str]> = SHARED
        .iter()
        .filter(|(group, _)| group.contains(&tags[0]))
        .map(|(_, sentences)| *sentences)
        .collect();
    let vague = matches!(lead, Lead::Vague);
    let opening = match lead {
        Lead::Vague => rng.pick(VAGUE_PROBLEMS),
        Lead::Shared if !shared.is_empty() => {
            let group = rng.pick(&shared);
            rng.pick(group)
        }
        _ => rng.pick(primary.problems),
    };
    sentences.push(context.fill(opening, rng));
    let more = rng.pick(primary.problems);
    if !vague && more != opening && rng.chance(0.35) {
        sentences.push(context.fill(more, rng));
    }
    for &other in &tags[1..] {
        let problem = context.fill(rng.pick(TAGS[other].problems), rng);
        sentences.push(format!("{}{problem}", rng.pick(CONNECTORS)));
    }
    if rng.chance(if vague { 0.3 } else { 0.45 }) {
        sentences.push(context.fill(rng.pick(primary.tried), rng));
    }
    if sentences.len() < 2 || rng.chance(0.6) {
        sentences.push(rng.pick(CLOSINGS).to_string());
    }
    let text = sentences.join(" ");
    if channel == "chat" {
        return text;
    }
    let greeting = rng.pick(GREETINGS);
    let company = rng.pick(COMPANIES);
    let signature = match rng.below(4) {
        0 => format!("Best regards,\n{first} {last}"),
        1 => format!("Thanks,\n{first}"),
        2 => first.to_string(),
        _ => format!("Kind regards,\n{first} {last}\n{company}"),
    };
    format!("{greeting}\n\n{text}\n\n{signature}")
}

/// Swaps, drops or doubles one letter inside a longer word, as hurried typing does.
fn add_typo(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index].is_ascii_alphabetic() {
            let start = index;
            while index < chars.len() && chars[index].is_ascii_alphabetic() {
                index += 1;
            }
            if index - start >= 4 {
                words.push((start, index));
            }
        } else {
            index += 1;
        }
    }
    let Some(&(start, end)) = words.get(rng.below(words.len())) else {
        return text.to_string();
    };
    // Keep the first and last letters, which readers (and people typing) rarely get wrong.
    let at = start + 1 + rng.below(end - start - 2);
    match rng.below(3) {
        0 => chars.swap(at, at + 1),
        1 => {
            chars.remove(at);
        }
        _ => chars.insert(at, chars[at]),
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use std::collections::{BTreeMap, HashSet};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-02T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_same_seed_gives_the_same_tickets() {
        assert_eq!(generate(300, 7, now()), generate(300, 7, now()));
        assert_ne!(generate(300, 7, now()), generate(300, 8, now()));
    }

    /// Tests train models on demo tickets: if the day they run on changed the text or the
    /// order, a model (and a decision near its threshold) would change with the calendar.
    #[test]
    fn the_day_of_generation_moves_the_tickets_in_time_and_changes_nothing_else() {
        let monday = now();
        let saturday_night = DateTime::parse_from_rfc3339("2026-12-05T23:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let early_morning = DateTime::parse_from_rfc3339("2027-03-10T00:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let reference = generate(500, 7, monday);
        for other in [saturday_night, early_morning] {
            let moved = generate(500, 7, other);
            for (a, b) in reference.iter().zip(&moved) {
                assert_eq!(
                    (&a.external_id, &a.subject, &a.body, &a.metadata, &a.tags),
                    (&b.external_id, &b.subject, &b.body, &b.metadata, &b.tags)
                );
            }
            assert!(moved.windows(2).all(|w| w[0].created_at <= w[1].created_at));
            assert!(moved.iter().all(|t| t.created_at <= other));
            assert!(
                moved
                    .iter()
                    .all(|t| t.created_at > other - Duration::days(HISTORY_DAYS))
            );
        }
    }

    #[test]
    fn weekends_are_quieter_and_office_hours_busiest() {
        let tickets = generate(3000, 3, now());
        let weekend = tickets
            .iter()
            .filter(|t| matches!(t.created_at.weekday(), Weekday::Sat | Weekday::Sun))
            .count() as f64;
        // Two days in seven at 0.4 of a weekday's weight: 0.8 / 5.8, about 14% of tickets.
        let share = weekend / tickets.len() as f64;
        assert!((0.09..=0.19).contains(&share), "weekend share {share}");
        let office = tickets
            .iter()
            .filter(|t| (8..18).contains(&t.created_at.hour()))
            .count() as f64;
        assert!(office / tickets.len() as f64 > 0.8, "office-hours share");
        assert_eq!(ordinal(1), "the 1st");
        assert_eq!(ordinal(12), "the 12th");
        assert_eq!(ordinal(22), "the 22nd");
        assert_eq!(ordinal(23), "the 23rd");
    }

    #[test]
    fn no_tag_name_is_lost_and_the_taxonomy_is_valid() {
        assert_eq!(tag_names().len(), TAGS.len());
        let taxonomy = default_taxonomy();
        assert_eq!(taxonomy.len(), 10);
        let folded: HashSet<String> = taxonomy.iter().map(|t| t.name.folded()).collect();
        assert_eq!(folded.len(), 10);
        let colours: HashSet<&str> = taxonomy.iter().map(|t| t.color.as_str()).collect();
        assert_eq!(colours.len(), 10);
        for tag in &taxonomy {
            tag.validate().unwrap();
            assert_eq!(tag.color.len(), 7);
            assert!(tag.color.starts_with('#'));
            assert!(
                tag.color[1..]
                    .chars()
                    .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
            );
            assert!((2..=4).contains(&tag.keywords.include.len()));
            assert!(tag.keywords.include.iter().all(|p| *p == p.to_lowercase()));
            assert!(!tag.description.is_empty());
        }
    }

    #[test]
    fn two_thousand_tickets_look_like_a_help_desk() {
        let tickets = generate(2000, 42, now());
        let known: HashSet<String> = default_taxonomy()
            .into_iter()
            .map(|t| t.name.as_str().to_string())
            .collect();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut ids = HashSet::new();
        for ticket in &tickets {
            assert!(ids.insert(ticket.external_id.clone()));
            assert!(ticket.created_at <= now());
            assert!(ticket.created_at > now() - Duration::days(HISTORY_DAYS));
            assert!(!ticket.body.trim().is_empty() && ticket.body.len() < 4096);
            assert!(!ticket.subject.trim().is_empty());
            assert!(!ticket.body.contains('{') && !ticket.subject.contains('{'));
            assert!(
                ticket.metadata["requester"]
                    .as_str()
                    .unwrap()
                    .ends_with("@example.com")
            );
            for tag in &ticket.tags {
                assert!(known.contains(tag.as_str()), "unknown tag {tag}");
                *counts.entry(tag.to_string()).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), 10, "{counts:?}");
        let share = |n: usize| n as f64 / tickets.len() as f64;
        let unlabelled = share(tickets.iter().filter(|t| t.tags.is_empty()).count());
        let multi = share(tickets.iter().filter(|t| t.tags.len() >= 2).count());
        assert!((0.10..=0.20).contains(&unlabelled), "{unlabelled}");
        assert!((0.12..=0.30).contains(&multi), "{multi}");
        assert!(counts["Bug"] > 3 * counts["Security"]);
        assert!(counts["Question"] > 3 * counts["Data Loss"]);
    }

    #[test]
    fn performance_issues_rise_in_the_last_weeks() {
        let tickets = generate(3000, 1, now());
        let cutoff = now() - Duration::days(TREND_DAYS);
        let share = |recent: bool| {
            let group: Vec<_> = tickets
                .iter()
                .filter(|t| !t.tags.is_empty() && (t.created_at > cutoff) == recent)
                .collect();
            let hits = group
                .iter()
                .filter(|t| t.tags.iter().any(|n| n.as_str() == "Performance Issue"))
                .count();
            hits as f64 / group.len() as f64
        };
        assert!(share(true) > 1.8 * share(false));
    }

    /// A bag-of-words naive Bayes must beat the majority class by far, yet not be perfect.
    #[test]
    fn the_text_is_learnable_but_noisy() {
        let words = |t: &DemoTicket| -> Vec<String> {
            format!("{} {}", t.subject, t.body)
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 2)
                .map(str::to_string)
                .collect()
        };
        let tickets: Vec<_> = generate(3000, 5, now())
            .into_iter()
            .filter(|t| !t.tags.is_empty())
            .collect();
        let (train, test) = tickets.split_at(tickets.len() * 3 / 4);
        let mut docs: BTreeMap<String, f64> = BTreeMap::new();
        let mut freq: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        for ticket in train {
            let tag = ticket.tags[0].to_string();
            *docs.entry(tag.clone()).or_default() += 1.0;
            for word in words(ticket) {
                *freq.entry((tag.clone(), word)).or_default() += 1.0;
                *totals.entry(tag.clone()).or_default() += 1.0;
            }
        }
        let correct = test
            .iter()
            .filter(|ticket| {
                let ws = words(ticket);
                let best = docs
                    .iter()
                    .map(|(tag, n)| {
                        let score = n.ln()
                            + ws.iter()
                                .map(|w| {
                                    let c = freq.get(&(tag.clone(), w.clone())).unwrap_or(&0.0);
                                    ((c + 0.5) / (totals[tag] + 2000.0)).ln()
                                })
                                .sum::<f64>();
                        (score, tag)
                    })
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .unwrap()
                    .1;
                ticket.tags.iter().any(|t| t.as_str() == best)
            })
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        assert!(accuracy > 0.6 && accuracy < 0.97, "{accuracy}");
    }
}
