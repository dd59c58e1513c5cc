//! A real browser: headless Chromium, driven through WebDriver (Debian's `chromedriver`), uses the
//! pages of one node on the embedded defaults the way a person would: register, sign out, a wrong
//! password, sign in, the "where you're signed in" page, a second device (an iPhone-sized window
//! with an iPhone user agent) and signing that device out from the first one.
//!
//! A second scenario recovers an account: "Forgot password?" on the sign-in page, the reset mail
//! read from the node's outbox (`DATA_DIR/outbox/*.eml`, the embedded default without
//! `--smtp-url`), its link followed, a new password chosen, and signing in with it.
//!
//! A PNG of every page visited is saved under `target/browser-screenshots/`, so a person can look
//! at what the pages look like. Chromium and chromedriver are required (scripts/test.sh installs
//! them); when they are missing the test fails and says so rather than skipping.

mod common;

use std::fs::File;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use ringfence_testkit::NodeProcess;

/// The whole scenario must finish within this, whatever hangs.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);
/// One wait for a page element, a navigation or chromedriver's readiness.
const STEP_LIMIT: Duration = Duration::from_secs(15);

/// An iPhone 12-15's screen in CSS pixels.
const PHONE: (u32, u32) = (390, 844);
const IPHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// `name` from the environment variable `var`, else the Debian path, else `PATH`.
fn locate(var: &str, debian: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "${var} names {}, which is not a file",
            path.display()
        );
        return path;
    }
    if Path::new(debian).is_file() {
        return PathBuf::from(debian);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} not found (looked at ${var}, {debian} and PATH): install Debian's \
                 `chromium` and `chromium-driver` packages (scripts/test.sh does) to run the \
                 browser test"
            )
        })
}

/// A chromedriver process on a free loopback port, in its own process group so that dropping it
/// also ends every Chromium it started, even when the test panics half way.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ChromeDriver {
    async fn start(dir: &Path) -> ChromeDriver {
        let binary = locate("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver");
        let port = ringfence_testkit::free_port();
        let log = dir.join("chromedriver.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        driver.wait_ready().await;
        driver
    }

    /// Polls `GET /status` until chromedriver says it is ready.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "chromedriver exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if let Ok(response) = http.get(format!("{}/status", self.url)).send().await {
                if let Ok(body) = response.json::<serde_json::Value>().await {
                    if body["value"]["ready"] == true {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready after {STEP_LIMIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new headless Chromium session with a fresh profile, these extra command-line flags and,
    /// when given, chromedriver's `mobileEmulation` options.
    async fn browser(
        &self,
        profile: &Path,
        extra: &[String],
        mobile: Option<serde_json::Value>,
    ) -> Client {
        let chromium = locate("CHROMIUM", "/usr/bin/chromium", "chromium");
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend_from_slice(extra);
        let mut options = serde_json::json!({ "binary": chromium, "args": args });
        if let Some(mobile) = mobile {
            options["mobileEmulation"] = mobile;
        }
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": 15_000, "script": 5_000, "implicit": 0 },
            "goog:chromeOptions": options,
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let session = builder.connect(&self.url);
        match tokio::time::timeout(STEP_LIMIT * 2, session).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "chromedriver could not start Chromium ({}): {e}\n{}",
                chromium.display(),
                self.log()
            ),
            Err(_) => panic!(
                "Chromium did not start within {:?}\n{}",
                STEP_LIMIT * 2,
                self.log()
            ),
        }
    }
}

impl ChromeDriver {
    /// A desktop-sized Chromium (1280 x 900) with a fresh profile at `profile`.
    async fn desktop(&self, profile: &Path) -> Client {
        let size = ["--window-size=1280,900".to_owned()];
        self.browser(profile, &size, None).await
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)); Chromium runs in that group.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal; the group is the one this test created.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: `<target dir>/browser-screenshots/`.
fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp` for integration tests, wherever the target dir is.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target tmp dir has a parent")
        .join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a PNG of what the browser shows now.
async fn screenshot(browser: &Client, dir: &Path, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    let found = browser
        .wait()
        .at_most(STEP_LIMIT)
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element,
        Err(e) => panic!("no `{css}` on {:?}: {e}", browser.current_url().await.ok()),
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    find(browser, css).await.text().await.unwrap()
}

/// Clicks the element `css` (once it is there).
async fn click(browser: &Client, css: &str) {
    find(browser, css).await.click().await.unwrap();
}

/// Types `text` into the field `css` (once it is there), after what it holds.
async fn type_into(browser: &Client, css: &str, text: &str) {
    find(browser, css).await.send_keys(text).await.unwrap();
}

/// Replaces what the field `css` holds with `text`.
async fn replace_text(browser: &Client, css: &str, text: &str) {
    let field = find(browser, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn path_of(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_owned()
}

/// Waits until `check` holds for the browser, or fails after STEP_LIMIT saying `what`.
async fn wait_until<F, Fut>(browser: &Client, what: &str, mut check: F)
where
    F: FnMut(Client) -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + STEP_LIMIT;
    while !check(browser.clone()).await {
        if Instant::now() >= deadline {
            let at = browser.current_url().await.ok();
            panic!("{what}: not within {STEP_LIMIT:?} (at {at:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page header's text ("ringfence (node) Signed in as … Sign out" or "… Sign in Create account").
async fn header(browser: &Client) -> String {
    text_of(browser, "header.top").await
}

/// Types e-mail and password into the page's sign-in or register form (replacing what is there).
async fn fill_credentials(browser: &Client, email: &str, password: &str) {
    replace_text(browser, "main form input[name=email]", email).await;
    replace_text(browser, "main form input[name=password]", password).await;
}

/// Opens `path` of `base` in `browser`.
async fn open(browser: &Client, base: &str, path: &str) {
    browser.goto(&format!("{base}{path}")).await.unwrap();
}

/// Fills the sign-in page of `base` with `email` and `password` and submits it.
async fn submit_login(browser: &Client, base: &str, email: &str, password: &str) {
    open(browser, base, "/login").await;
    fill_credentials(browser, email, password).await;
    submit_main_form(browser).await;
}

/// Clicks the main form's submit button and waits for the page that comes back.
async fn submit_main_form(browser: &Client) {
    let form = find(browser, "main form").await;
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The old page's form goes stale once the new page is loaded.
    wait_until(browser, "the form's response page loads", move |_| {
        let form = form.clone();
        async move { form.tag_name().await.is_err() }
    })
    .await;
}

async fn wait_signed_in(browser: &Client, email: &str) {
    let expected = format!("Signed in as {email}");
    let who = text_of(browser, "header.top .who").await;
    assert_eq!(who, expected, "page header");
}

/// Asserts that `what` (a form just submitted) landed on the home page, signed in as `email`.
async fn assert_home_signed_in(browser: &Client, email: &str, what: &str) {
    assert_eq!(path_of(browser).await, "/", "{what} lands on the home page");
    wait_signed_in(browser, email).await;
}

/// The devices listed on the sessions page: (label, row text) per device, in page order.
async fn devices(browser: &Client) -> Vec<(String, String)> {
    find(browser, "ul.devices").await;
    let mut out = Vec::new();
    for row in browser
        .find_all(Locator::Css("ul.devices li.device"))
        .await
        .unwrap()
    {
        let label = row
            .find(Locator::Css("strong"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.push((label, row.text().await.unwrap()));
    }
    out
}

/// `GET /api/v1/me`'s status for a request that carries `cookies` (a `Cookie` header's value).
async fn me_status(api: &reqwest::Client, base: &str, cookies: &str) -> StatusCode {
    let url = format!("{base}/api/v1/me");
    api.get(url).header("cookie", cookies).answer_status().await
}

/// Whether the page fits the window's width (no sideways scrolling), as it must on a phone.
async fn fits_width(browser: &Client) -> (bool, serde_json::Value) {
    let sizes = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let fits = sizes[0].as_u64().unwrap() <= sizes[1].as_u64().unwrap();
    (fits, sizes)
}

/// A node named `name` on the embedded defaults, its data directory `scratch/data`; the node
/// and that directory.
fn embedded_node(scratch: &Path, name: &str) -> (NodeProcess, PathBuf) {
    let data = scratch.join("data");
    std::fs::create_dir_all(&data).unwrap();
    (start_node(name, &data, &[]), data)
}

/// Runs the `what` scenario within [`SCENARIO_LIMIT`]; one that hangs fails the test with
/// chromedriver's log and the output of every node.
async fn within_limit(
    what: &str,
    scenario: impl Future<Output = ()>,
    driver: &ChromeDriver,
    nodes: &[NodeProcess],
) {
    if tokio::time::timeout(SCENARIO_LIMIT, scenario)
        .await
        .is_err()
    {
        let logs: String = nodes
            .iter()
            .map(|node| format!("\nnode:\n{}", node.output()))
            .collect();
        panic!(
            "the {what} scenario did not finish within {SCENARIO_LIMIT:?}\nchromedriver:\n{}{logs}",
            driver.log()
        );
    }
}

#[tokio::test]
async fn register_sign_out_sign_in_and_sign_another_device_out_in_chromium() {
    let scratch = tempfile::tempdir().unwrap();
    let (node, _) = embedded_node(scratch.path(), "browser");
    let driver = ChromeDriver::start(scratch.path()).await;
    let shots = screenshot_dir();
    println!("screenshots go to {}", shots.display());
    let base = node.url();
    let scenario = scenario(&base, &driver, scratch.path(), &shots);
    within_limit("browser", scenario, &driver, &[node]).await;
}

async fn scenario(base: &str, driver: &ChromeDriver, scratch: &Path, shots: &Path) {
    let email = "ada@example.com";
    let desktop = driver.desktop(&scratch.join("desktop-profile")).await;

    // Register: the form, filled in, then the home page signed in.
    open(&desktop, base, "/register").await;
    assert!(
        header(&desktop).await.contains("(browser)"),
        "node name in the header"
    );
    fill_credentials(&desktop, email, PASSWORD).await;
    screenshot(&desktop, shots, "01-register").await;
    submit_main_form(&desktop).await;
    assert_home_signed_in(&desktop, email, "register").await;
    screenshot(&desktop, shots, "02-home-signed-in").await;

    // Sign out with the header's button.
    click(&desktop, "header.top form[action='/logout'] button").await;
    wait_until(&desktop, "signed out after Sign out", |b| async move {
        b.find(Locator::Css("header.top a[href='/login']"))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(path_of(&desktop).await, "/");
    let top = header(&desktop).await;
    assert!(!top.contains("Signed in as"), "still signed in: {top}");

    // A wrong password: the form again, with a message, the e-mail kept, still signed out.
    submit_login(&desktop, base, email, "not the password at all").await;
    let message = text_of(&desktop, "main .error").await;
    assert!(!message.trim().is_empty(), "bad credentials show a message");
    let kept = find(&desktop, "main form input[name=email]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(email), "the form keeps the e-mail");
    assert!(!header(&desktop).await.contains("Signed in as"));
    println!("bad-credentials message: {message}");
    screenshot(&desktop, shots, "03-login-bad-credentials").await;

    // The right password.
    open(&desktop, base, "/login").await;
    fill_credentials(&desktop, email, PASSWORD).await;
    screenshot(&desktop, shots, "04-login").await;
    submit_main_form(&desktop).await;
    assert_home_signed_in(&desktop, email, "sign-in").await;

    // Where you're signed in: only this device, labelled from Chromium's user agent.
    open(&desktop, base, "/account/sessions").await;
    let listed = devices(&desktop).await;
    assert_eq!(listed.len(), 1, "one device: {listed:?}");
    assert_eq!(listed[0].0, "Chrome on Linux", "device label: {listed:?}");
    assert!(listed[0].1.contains("This device"), "{listed:?}");
    assert!(
        listed[0].1.contains("127.0.0.1"),
        "the IP is shown: {listed:?}"
    );
    screenshot(&desktop, shots, "05-sessions-one-device").await;

    // A second device: an iPhone-sized window with an iPhone's user agent signs the same user in.
    let phone_profile = scratch.join("phone-profile");
    let phone = driver
        .browser(
            &phone_profile,
            &[format!("--user-agent={IPHONE_UA}")],
            // A phone's screen, not just a narrow window: 390 x 844 CSS pixels at 2x, a mobile
            // viewport (so the page's viewport meta tag applies) and touch.
            Some(serde_json::json!({
                "deviceMetrics": {
                    "width": PHONE.0, "height": PHONE.1, "pixelRatio": 2.0,
                    "mobile": true, "touch": true,
                },
                "userAgent": IPHONE_UA,
            })),
        )
        .await;
    submit_login(&phone, base, email, PASSWORD).await;
    wait_signed_in(&phone, email).await;
    open(&phone, base, "/account/sessions").await;
    let listed = devices(&phone).await;
    assert_eq!(listed.len(), 2, "two devices on the phone: {listed:?}");
    assert_eq!(listed[0].0, "Safari on iPhone", "{listed:?}");
    assert!(listed[0].1.contains("This device"), "{listed:?}");
    let (fits, sizes) = fits_width(&phone).await;
    assert_eq!(sizes[1], PHONE.0, "the phone's viewport width");
    assert!(
        fits,
        "the sessions page scrolls sideways on a phone: {sizes}"
    );
    screenshot(&phone, shots, "06-phone-sessions").await;
    let phone_cookies = phone.get_all_cookies().await.unwrap();
    assert!(!phone_cookies.is_empty(), "the phone has a session cookie");
    let phone_cookie_header = phone_cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let api = reqwest::Client::builder()
        .timeout(STEP_LIMIT)
        .build()
        .unwrap();
    let me = me_status(&api, base, &phone_cookie_header).await;
    assert_eq!(me, StatusCode::OK, "the phone's cookie works");

    // Back on the desktop: two devices; sign the phone out from here.
    desktop.refresh().await.unwrap();
    let listed = devices(&desktop).await;
    assert_eq!(listed.len(), 2, "two devices on the desktop: {listed:?}");
    assert!(
        listed[0].1.contains("This device"),
        "current first: {listed:?}"
    );
    assert_eq!(listed[1].0, "Safari on iPhone", "{listed:?}");
    assert!(!listed[1].1.contains("This device"), "{listed:?}");
    screenshot(&desktop, shots, "07-sessions-two-devices").await;
    let other = find(&desktop, "ul.devices li.device:not(.current) form button").await;
    assert_eq!(other.text().await.unwrap(), "Sign out");
    other.click().await.unwrap();
    wait_until(&desktop, "the phone's row goes away", |b| async move {
        b.find_all(Locator::Css("ul.devices li.device"))
            .await
            .map(|rows| rows.len() == 1)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(path_of(&desktop).await, "/account/sessions");
    let listed = devices(&desktop).await;
    assert_eq!(listed[0].0, "Chrome on Linux", "{listed:?}");
    assert!(listed[0].1.contains("This device"), "{listed:?}");
    wait_signed_in(&desktop, email).await;
    screenshot(&desktop, shots, "08-sessions-after-revoke").await;

    // The phone is signed out: its cookie gets 401 from the API and its pages show no user.
    let me = me_status(&api, base, &phone_cookie_header).await;
    assert_eq!(me, StatusCode::UNAUTHORIZED, "revoked phone session");
    open(&phone, base, "/").await;
    let top = header(&phone).await;
    assert!(
        !top.contains("Signed in as"),
        "phone still signed in: {top}"
    );
    assert!(
        phone
            .find(Locator::Css("header.top a[href='/login']"))
            .await
            .is_ok(),
        "phone header offers Sign in"
    );
    screenshot(&phone, shots, "09-phone-signed-out").await;

    phone.close().await.unwrap();
    desktop.close().await.unwrap();
}

const NEW_PASSWORD: &str = "violet kettle drums at dawn";

#[tokio::test]
async fn forgot_password_mail_link_reset_and_sign_in_with_the_new_password_in_chromium() {
    let scratch = tempfile::tempdir().unwrap();
    let (node, data) = embedded_node(scratch.path(), "recovery");
    let base = node.url();
    register_api(&browser(), &base, "grace@example.com").await;
    let driver = ChromeDriver::start(scratch.path()).await;
    let shots = screenshot_dir();
    let scenario = reset_scenario(&base, &data, &driver, scratch.path(), &shots);
    within_limit("reset", scenario, &driver, &[node]).await;
}

/// The link of the reset mail to `to` in the outbox, once the node has written it.
async fn reset_link_in_outbox(outbox: &Path, to: &str) -> String {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let files = std::fs::read_dir(outbox).into_iter().flatten().flatten();
        for file in files {
            let Ok(bytes) = std::fs::read(file.path()) else {
                continue;
            };
            let Ok(mail) = ringfence_testkit::ReceivedMail::parse(&bytes) else {
                continue;
            };
            let text = mail.text().unwrap_or_default();
            let addressed = mail.header("to").is_some_and(|t| t.contains(to));
            if let (true, Some(start)) = (addressed, text.find("http")) {
                let link: String = text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                if link.contains("/reset-password?token=") {
                    return link;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no reset mail to {to} in {} within {STEP_LIMIT:?}",
            outbox.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reset_scenario(
    base: &str,
    data: &Path,
    driver: &ChromeDriver,
    scratch: &Path,
    shots: &Path,
) {
    let email = "grace@example.com";
    let desktop = driver.desktop(&scratch.join("reset-profile")).await;

    // "Forgot password?" on the sign-in page, then the address.
    open(&desktop, base, "/login").await;
    click(&desktop, "main a[href='/forgot-password']").await;
    wait_until(&desktop, "the forgot-password page", |b| async move {
        path_of(&b).await == "/forgot-password"
    })
    .await;
    type_into(&desktop, "main form input[name=email]", email).await;
    screenshot(&desktop, shots, "10-forgot-password").await;
    submit_main_form(&desktop).await;
    assert_eq!(text_of(&desktop, "main h1").await, "Check your mail");
    screenshot(&desktop, shots, "11-check-your-mail").await;

    // The mail, from the outbox; its one link, followed in the browser.
    let link = reset_link_in_outbox(&data.join("outbox"), email).await;
    println!(
        "reset link: {}",
        link.split("token=").next().unwrap_or_default()
    );
    desktop.goto(&link).await.unwrap();
    assert_eq!(path_of(&desktop).await, "/reset-password");
    assert_eq!(text_of(&desktop, "main h1").await, "Choose a new password");
    type_into(&desktop, "main form input[name=password]", NEW_PASSWORD).await;
    screenshot(&desktop, shots, "12-reset-password").await;
    submit_main_form(&desktop).await;
    assert_eq!(
        path_of(&desktop).await,
        "/login",
        "the reset sends the browser to sign in"
    );

    // The old password is refused; the new one signs in.
    fill_credentials(&desktop, email, PASSWORD).await;
    submit_main_form(&desktop).await;
    let message = text_of(&desktop, "main .error").await;
    assert!(!message.trim().is_empty(), "the old password is refused");
    assert!(!header(&desktop).await.contains("Signed in as"));
    submit_login(&desktop, base, email, NEW_PASSWORD).await;
    assert_home_signed_in(&desktop, email, "sign-in with the new password").await;
    screenshot(&desktop, shots, "13-signed-in-after-reset").await;

    // The security page: the reset link proved the address, so it shows as verified.
    click(&desktop, "header.top a[href='/account/security']").await;
    assert_eq!(text_of(&desktop, "#email-status").await, "verified");
    find(
        &desktop,
        "section#password form input[name=current_password]",
    )
    .await;
    screenshot(&desktop, shots, "13b-account-security").await;

    // The link works once: following it again ends on the "not valid" page.
    desktop.goto(&link).await.unwrap();
    type_into(
        &desktop,
        "main form input[name=password]",
        "another fine passphrase",
    )
    .await;
    submit_main_form(&desktop).await;
    assert_eq!(text_of(&desktop, "main h1").await, "This link is not valid");
    screenshot(&desktop, shots, "14-link-used").await;

    desktop.close().await.unwrap();
}

/// chromedriver's WebAuthn extension: `POST /session/{id}/webauthn/authenticator` adds a
/// virtual authenticator to the session's browser.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Loads `/static/passkeys.js` into the page (as a page of ours would: CSP `script-src 'self'`)
/// and runs `call` (an expression over `window.ringfencePasskeys`); returns `{ok}` or `{err}`.
async fn run_passkeys_js(browser: &Client, call: &str) -> serde_json::Value {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         const run = () => ({call}).then((ok) => done({{ ok: ok === undefined ? null : ok }}),
                                        (e) => done({{ err: String(e) }}));
         if (window.ringfencePasskeys) {{ run(); return; }}
         const s = document.createElement('script');
         s.src = '/static/passkeys.js';
         s.onload = run;
         s.onerror = () => done({{ err: 'passkeys.js did not load' }});
         document.head.appendChild(s);"
    );
    browser.execute_async(&script, vec![]).await.unwrap()
}

/// The passkey scenario of issue 15 in a real Chromium with a virtual authenticator: two nodes
/// (users and passkeys in PostgreSQL, ceremonies in Redis) behind HAProxy, the public URL
/// `http://localhost:PORT` of HAProxy (a secure context). Register a passkey, sign out, sign in
/// with the password and the passkey as the second step (`/login/mfa`), sign out, sign in with
/// the passkey alone (the button of `/login`), remove it; HAProxy spreads the requests over
/// both nodes.
#[tokio::test]
async fn passkey_registers_signs_in_and_is_removed_in_chromium_behind_haproxy() {
    use ringfence_testkit::{HaProxy, PostgresServer, RedisServer};

    let scratch = tempfile::tempdir().unwrap();
    let redis = RedisServer::start().expect("redis");
    let postgres = PostgresServer::start().expect("postgres");
    // The nodes' ports first (HAProxy must name them), then HAProxy, then the nodes, which
    // need HAProxy's address as their public URL.
    let ports: Vec<std::net::SocketAddr> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let backends: Vec<(String, std::net::SocketAddr)> = ports
        .iter()
        .zip(["node1", "node2"])
        .map(|(addr, name)| (name.to_owned(), *addr))
        .collect();
    let haproxy = HaProxy::start(&backends).expect("haproxy");
    let base = format!("http://localhost:{}", haproxy.port());
    let mut nodes = Vec::new();
    for (name, addr) in &backends {
        let data = scratch.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let args: Vec<String> = [
            "serve",
            "--listen",
            &addr.to_string(),
            "--node-name",
            name,
            "--data-dir",
            &data.display().to_string(),
            "--redis",
            &redis.url(),
            "--database",
            &postgres.url(),
            "--trusted-proxy",
            "127.0.0.1/32",
            "--public-url",
            &base,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        nodes.push(
            NodeProcess::start(Path::new(env!("CARGO_BIN_EXE_ringfence")), &args, &[])
                .unwrap_or_else(|e| panic!("start {name}: {e}")),
        );
    }
    for (name, _) in &backends {
        haproxy
            .wait_for_server_status(name, "UP", Duration::from_secs(15))
            .expect("backend up");
    }
    let driver = ChromeDriver::start(scratch.path()).await;
    let scenario = passkey_scenario(&base, &driver, scratch.path());
    within_limit("passkey", scenario, &driver, &nodes).await;
}

async fn passkey_scenario(base: &str, driver: &ChromeDriver, scratch: &Path) {
    let email = "grace@example.com";
    let api = common::browser();
    let response = api
        .post(format!("{base}/api/v1/register"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let browser = driver
        .browser(&scratch.join("passkey-profile"), &[], None)
        .await;
    browser
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("chromedriver adds a virtual authenticator");

    // Signed in with the password (recent authentication), register a passkey.
    submit_login(&browser, base, email, PASSWORD).await;
    wait_signed_in(&browser, email).await;
    // Through the page: its form and /static/passkeys.js (under the page's CSP).
    open(&browser, base, "/account/passkeys").await;
    type_into(&browser, "#passkey-register input[name=name]", "Chromium").await;
    click(&browser, "#passkey-register button[type=submit]").await;
    wait_until(&browser, "the new passkey is listed", |b| async move {
        match b.find(Locator::Css("li.passkey strong")).await {
            Ok(e) => e.text().await.is_ok_and(|t| t == "Chromium"),
            Err(_) => false,
        }
    })
    .await;

    // Signed out (a fresh cookie jar), the password alone no longer signs in: the passkey is
    // the second step, through the button of /login/mfa.
    browser.delete_all_cookies().await.unwrap();
    submit_login(&browser, base, email, PASSWORD).await;
    assert_eq!(path_of(&browser).await, "/login/mfa");
    screenshot(&browser, &screenshot_dir(), "15-login-mfa-passkey").await;
    click(&browser, "#passkey-login").await;
    wait_signed_in(&browser, email).await;

    // Signed out again, sign in with the passkey alone: the button of /login.
    browser.delete_all_cookies().await.unwrap();
    open(&browser, base, "/login").await;
    click(&browser, "#passkey-login").await;
    wait_signed_in(&browser, email).await;

    // The security page embeds the two-step and passkey sections.
    open(&browser, base, "/account/security#two-factor").await;
    find(&browser, "#passkeys li.passkey").await;
    screenshot(&browser, &screenshot_dir(), "16-account-security-factors").await;

    // The list shows it used; remove it.
    let list = run_passkeys_js(&browser, "window.ringfencePasskeys.list()").await;
    let passkeys = list["ok"].as_array().cloned().unwrap_or_default();
    assert_eq!(passkeys.len(), 1, "{list}");
    assert!(passkeys[0]["last_used_at"].is_string(), "{list}");
    open(&browser, base, "/account/passkeys").await;
    assert!(text_of(&browser, "li.passkey .meta")
        .await
        .contains("last used"));
    click(&browser, "li.passkey button[data-passkey-delete]").await;
    wait_until(
        &browser,
        "the passkey is gone from the page",
        |b| async move {
            b.find(Locator::Css("#passkey-register")).await.is_ok()
                && b.find(Locator::Css("li.passkey")).await.is_err()
        },
    )
    .await;
    let list = run_passkeys_js(&browser, "window.ringfencePasskeys.list()").await;
    assert_eq!(list["ok"], serde_json::json!([]), "{list}");

    // The removed passkey signs nobody in.
    browser.delete_all_cookies().await.unwrap();
    open(&browser, base, "/login").await;
    let refused = run_passkeys_js(&browser, "window.ringfencePasskeys.signIn()").await;
    assert!(refused["err"].is_string(), "{refused}");
    browser.close().await.unwrap();
}
