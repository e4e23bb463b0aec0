//! Issue 13, findings 2, 3, 9 and 11 against a real server on a socket with parallel
//! clients: the failed-login limit holds under concurrency, password hashing is capped, the
//! login redirect stays on this site, the login form needs a token the server signed, and a
//! password is taken exactly as typed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::store::prelude::*;
use datasets::test_db::TestDatabase;
use datasets::*;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use std::time::Duration;
use workbench::app::Application;
use workbench::config::Config;
use workbench::state::AppState;
use workbench::web::PasswordHashing;
use workbench::web::login_limits::{
    MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS, MAX_FAILURES_PER_ADDRESS,
};

const PASSWORD: &str = "a long test password";

struct Server {
    base: String,
    client: reqwest::Client,
    store: AnyStore,
    _database: TestDatabase,
}

/// What a login form gives a browser: its CSRF cookie and the token in the form.
#[derive(Clone)]
struct LoginForm {
    cookie: String,
    token: String,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    retry_after: Option<u64>,
    cookies: Vec<String>,
    body: String,
}

fn csrf_in(body: &str) -> String {
    let start = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    let end = start + body[start..].find('"').unwrap();
    body[start..end].to_string()
}

impl Server {
    /// A server with users `admin` and `labeler`, hashing with `hashing`.
    async fn start(hashing: PasswordHashing) -> Self {
        let database = TestDatabase::sqlite().unwrap();
        let store = database.store().await.unwrap();
        let hash = workbench::web::hash_password(PASSWORD).unwrap();
        for (name, role) in [("admin", Role::Admin), ("labeler", Role::Labeler)] {
            store
                .create_user(&NewUser {
                    username: Username::parse(name).unwrap(),
                    role,
                    password_hash: hash.clone(),
                })
                .await
                .unwrap();
        }
        let mut state = AppState::new(store.clone(), Config::default());
        state.password_hashing = hashing;
        let application = Application::bind(state, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", application.local_addr().unwrap());
        tokio::spawn(application.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base,
            client,
            store,
            _database: database,
        }
    }

    /// Enough hashing slots and patience that no attempt is refused as busy.
    async fn patient() -> Self {
        Self::start(PasswordHashing::new(8).with_wait(Duration::from_secs(60))).await
    }

    async fn read(response: reqwest::Response) -> Answer {
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let location = header(LOCATION);
        let retry_after = header(RETRY_AFTER).map(|v| v.parse().unwrap());
        let cookies = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect();
        Answer {
            status: response.status(),
            location,
            retry_after,
            cookies,
            body: response.text().await.unwrap(),
        }
    }

    async fn login_form(&self) -> LoginForm {
        let page = Self::read(
            self.client
                .get(format!("{}/login", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK);
        LoginForm {
            cookie: page
                .cookies
                .iter()
                .find(|c| c.starts_with("tagger_login_csrf="))
                .unwrap()
                .clone(),
            token: csrf_in(&page.body),
        }
    }

    async fn post(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Answer {
        Self::read(
            self.client
                .post(format!("{}{path}", self.base))
                .header(COOKIE, cookie)
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn try_login(&self, form: &LoginForm, username: &str, password: &str) -> Answer {
        self.try_login_to(form, username, password, "/").await
    }

    async fn try_login_to(
        &self,
        form: &LoginForm,
        username: &str,
        password: &str,
        next: &str,
    ) -> Answer {
        self.post(
            "/login",
            &form.cookie,
            &[
                ("csrf", form.token.as_str()),
                ("username", username),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }

    /// Many clients at once, each sending one login.
    async fn parallel_logins(&self, attempts: Vec<(String, String)>) -> Vec<Answer> {
        let form = self.login_form().await;
        let mut clients = tokio::task::JoinSet::new();
        for (username, password) in attempts {
            let form = form.clone();
            let client = self.client.clone();
            let url = format!("{}/login", self.base);
            clients.spawn(async move {
                let response = client
                    .post(url)
                    .header(COOKIE, &form.cookie)
                    .form(&[
                        ("csrf", form.token.as_str()),
                        ("username", username.as_str()),
                        ("password", password.as_str()),
                        ("next", "/"),
                    ])
                    .send()
                    .await
                    .unwrap();
                Server::read(response).await
            });
        }
        clients.join_all().await
    }

    /// A logged-in admin's session cookie and the CSRF token of its pages.
    async fn admin_session(&self) -> (String, String) {
        let form = self.login_form().await;
        let login = self.try_login(&form, "admin", PASSWORD).await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
        let session = login
            .cookies
            .iter()
            .find(|c| c.starts_with("tagger_session="))
            .unwrap()
            .clone();
        let page = Self::read(
            self.client
                .get(format!("{}/admin/users", self.base))
                .header(COOKIE, &session)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = csrf_in(&page.body);
        (session, csrf)
    }
}

fn count(answers: &[Answer], status: StatusCode) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_parallel_wrong_passwords_get_at_most_the_limit_then_429_even_for_the_right_one() {
    let server = Server::patient().await;
    let answers = server
        .parallel_logins(vec![("labeler".into(), "wrong password".into()); 40])
        .await;
    assert_eq!(
        count(&answers, StatusCode::UNAUTHORIZED),
        MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS
    );
    assert_eq!(
        count(&answers, StatusCode::TOO_MANY_REQUESTS),
        40 - MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS
    );
    for refused in answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
    {
        let seconds = refused.retry_after.expect("a 429 says when to retry");
        assert!((1..=15 * 60).contains(&seconds), "{seconds}");
    }
    let form = server.login_form().await;
    let right = server.try_login(&form, "labeler", PASSWORD).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        right
            .cookies
            .iter()
            .all(|c| !c.starts_with("tagger_session="))
    );
    // Other accounts from the same address are not locked out by one account's failures.
    let admin = server.try_login(&form, "admin", PASSWORD).await;
    assert_eq!(admin.status, StatusCode::SEE_OTHER, "{}", admin.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_across_accounts_stop_at_the_per_address_limit() {
    let server = Server::patient().await;
    let attempts = (0..MAX_FAILURES_PER_ADDRESS + 10)
        .map(|n| (format!("someone{n}"), "wrong password".to_string()))
        .collect();
    let answers = server.parallel_logins(attempts).await;
    assert_eq!(
        count(&answers, StatusCode::UNAUTHORIZED),
        MAX_FAILURES_PER_ADDRESS
    );
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_beyond_the_hashing_cap_get_a_fast_503_with_retry_after_and_do_not_count() {
    // One slot and almost no wait: concurrent logins find the slot taken.
    let server = Server::start(PasswordHashing::new(1).with_wait(Duration::from_millis(1))).await;
    let started = std::time::Instant::now();
    let attempts = (0..30)
        .map(|n| (format!("someone{n}"), "wrong password".to_string()))
        .collect();
    let answers = server.parallel_logins(attempts).await;
    let busy = count(&answers, StatusCode::SERVICE_UNAVAILABLE);
    assert!(busy > 0, "no login found the hashing slot taken");
    assert_eq!(busy + count(&answers, StatusCode::UNAUTHORIZED), 30);
    for answer in answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
    {
        assert_eq!(answer.retry_after, Some(1));
        assert!(answer.body.contains("busy"), "{}", answer.body);
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // Refused attempts were never checked, so they did not count against anyone.
    let form = server.login_form().await;
    let right = server.try_login(&form, "labeler", PASSWORD).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_redirect_stays_on_this_site_and_survives_control_characters() {
    let server = Server::patient().await;
    let form = server.login_form().await;
    for (next, expected) in [
        ("/p/1/tickets?q=x", "/p/1/tickets?q=x"),
        ("/\t/evil.example", "/"),
        ("/\\evil.example", "/"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/p\r\nSet-Cookie: stolen=1", "/"),
        ("/p/1/tickets?q=café", "/p/1/tickets?q=caf%C3%A9"),
    ] {
        let answer = server.try_login_to(&form, "admin", PASSWORD, next).await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{next:?}: {}",
            answer.body
        );
        assert_eq!(answer.location.as_deref(), Some(expected), "{next:?}");
    }
    // The form shown for a hostile target carries the safe one.
    let page = Server::read(
        server
            .client
            .get(format!("{}/login?next=%2F%09%2Fevil.example", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        // Autoescaped: `&#x2f;` is `/`.
        page.body.contains("name=\"next\" value=\"&#x2f;\""),
        "{}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_needs_a_token_the_server_issued() {
    let server = Server::patient().await;
    let fields = |token: &'static str| {
        [
            ("csrf", token),
            ("username", "admin"),
            ("password", PASSWORD),
            ("next", "/"),
        ]
    };
    // A pair an attacker chooses: two empty values, or any matching made-up token.
    let empty = server
        .post("/login", "tagger_login_csrf=", &fields(""))
        .await;
    assert_eq!(empty.status, StatusCode::FORBIDDEN);
    let made_up = server
        .post("/login", "tagger_login_csrf=abc", &fields("abc"))
        .await;
    assert_eq!(made_up.status, StatusCode::FORBIDDEN);
    let shaped = "1700000000.0123456789abcdef0123456789abcdef.\
                  0000000000000000000000000000000000000000000000000000000000000000";
    let forged = server
        .post(
            "/login",
            &format!("tagger_login_csrf={shaped}"),
            &fields(shaped),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A token another server issued (another database, another key) is refused too.
    let other = Server::patient().await;
    let foreign = other.login_form().await;
    let answer = server.try_login(&foreign, "admin", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // A real token, but not the one in this browser's cookie.
    let mine = server.login_form().await;
    let theirs = server.login_form().await;
    let mismatched = LoginForm {
        cookie: mine.cookie,
        token: theirs.token.clone(),
    };
    let answer = server.try_login(&mismatched, "admin", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = server.try_login(&theirs, "admin", PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_taken_exactly_as_typed_on_the_admin_page_and_at_login() {
    let server = Server::patient().await;
    let (session, csrf) = server.admin_session().await;
    let labeler = server
        .store
        .user_credentials(&Username::parse("labeler").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user;
    let path = format!("/admin/users/{}", labeler.id);
    let padded = server
        .post(
            &path,
            &session,
            &[("csrf", csrf.as_str()), ("password", " a new password 1 ")],
        )
        .await;
    assert_eq!(padded.status, StatusCode::BAD_REQUEST);
    assert!(
        padded.body.contains("may not begin or end"),
        "{}",
        padded.body
    );
    let form = server.login_form().await;
    // The old password still works: nothing was changed, not even a trimmed version.
    let old = server.try_login(&form, "labeler", PASSWORD).await;
    assert_eq!(old.status, StatusCode::SEE_OTHER);
    let set = server
        .post(
            &path,
            &session,
            &[("csrf", csrf.as_str()), ("password", "a new password 1")],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    let spaced = server
        .try_login(&form, "labeler", " a new password 1")
        .await;
    assert_eq!(spaced.status, StatusCode::UNAUTHORIZED);
    let exact = server.try_login(&form, "labeler", "a new password 1").await;
    assert_eq!(exact.status, StatusCode::SEE_OTHER);
}
