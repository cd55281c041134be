//! The teaching page in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against a server on loopback with a real
//! SQLite store. It types, clicks and presses keys as a person would, and
//! checks that the database holds exactly what was clicked.
//!
//! Needs `chromium` and `chromedriver` on the PATH (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them). Without them the test says
//! so and passes, unless `RLHF_REQUIRE_BROWSER=1` (set by `.ci/run`).
//! On failure it saves a screenshot under `target/tmp/`.

mod common;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use rlhf_assistant::serve::Service;
use rlhf_assistant::serve::store::{Event, Store};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use serde_json::json;

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_driver(chromedriver: &Path) -> anyhow::Result<Driver> {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", chromedriver.display()))?;
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        ensure!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(driver)
}

async fn open_browser(driver: &Driver, chromium: &Path, profile: &Path) -> anyhow::Result<Client> {
    // Root in a container needs --no-sandbox; the rest keeps Chromium off the network.
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--window-size=1280,1400".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({"goog:chromeOptions": {"binary": chromium, "args": args}});
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("a JSON object") };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    Ok(ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url).await?)
}

/// Waits until the text of `#id` satisfies `ready`; returns it.
async fn wait_text(browser: &Client, id: &str, ready: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser.find(Locator::Id(id)).await?.text().await?;
        if ready(&text) {
            return Ok(text);
        }
        ensure!(Instant::now() < deadline, "#{id} still reads {text:?} after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `#id` is enabled.
async fn wait_enabled(browser: &Client, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.find(Locator::Id(id)).await?.is_enabled().await? {
        ensure!(Instant::now() < deadline, "#{id} stayed disabled for 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn ask(browser: &Client, text: &str) -> anyhow::Result<String> {
    let input = browser.find(Locator::Id("utterance")).await?;
    input.clear().await?;
    input.send_keys(text).await?;
    browser.find(Locator::Id("ask")).await?.click().await?;
    wait_text(browser, "answer-text", |shown| shown == text).await?;
    wait_enabled(browser, "btn-right").await?;
    Ok(browser.find(Locator::Id("answer-intent")).await?.text().await?)
}

/// Presses `key` as a shortcut (focus on the answer, not a text field).
async fn press(browser: &Client, key: &str) -> anyhow::Result<()> {
    browser.find(Locator::Id("answer")).await?.send_keys(key).await?;
    Ok(())
}

async fn plot_points(browser: &Client) -> anyhow::Result<String> {
    Ok(browser.find(Locator::Id("plot")).await?.attr("data-points").await?.unwrap_or_default())
}

/// The person's session: what they type, click and press, and what the page shows.
async fn teach(browser: &Client, page: &str) -> anyhow::Result<()> {
    browser.goto(page).await?;
    wait_text(browser, "stats-interactions", |t| t == "0").await?;

    // Right, with the `y` key.
    let intent = ask(browser, "打开客厅的灯").await?;
    ensure!(intent == "light_on", "打开客厅的灯 answered {intent}");
    press(browser, "y").await?;
    wait_text(browser, "stats-right", |t| t == "1").await?;
    let points_before = plot_points(browser).await?;

    // An utterance of an intent the model lacks is necessarily answered
    // wrong; the intent is added on the page, and the answer corrected to it.
    ask(browser, "帮我叫一辆出租车").await?;
    let name = browser.find(Locator::Id("new-intent")).await?;
    name.send_keys("book_taxi").await?;
    browser.find(Locator::Id("add-intent")).await?.click().await?;
    wait_text(browser, "intent-count", |t| t == "5").await?;
    press(browser, "=").await?;
    browser.find(Locator::Id("correct-search")).await?.send_keys("taxi").await?;
    browser.find(Locator::Css("#correct-list li[data-intent='book_taxi']")).await?.click().await?;
    wait_text(browser, "stats-corrected", |t| t == "1").await?;
    wait_text(browser, "stats-accuracy-50", |t| t.starts_with("50")).await?;
    let points_after = plot_points(browser).await?;
    ensure!(points_after != points_before, "the plot gained a point: {points_before} → {points_after}");

    // What a user types is shown as text, never run.
    let script = "<img src=x onerror=\"document.title='pwned'\">";
    ask(browser, script).await?;
    let cell = browser.find(Locator::Css("#history tbody tr:first-child td.user-text")).await?;
    ensure!(cell.text().await? == script, "the history shows the text as typed");
    ensure!(browser.title().await? != "pwned", "the page ran what was typed");
    ensure!(browser.find_all(Locator::Css("#history img, #answer img")).await?.is_empty(), "no element injected");

    // Undo the correction, with the `u` key (the last feedback given).
    press(browser, "u").await?;
    wait_text(browser, "stats-corrected", |t| t == "0").await?;
    wait_text(browser, "stats-interactions", |t| t == "3").await?;
    Ok(())
}

/// A question, answered; the person chooses the third candidate ("this
/// one"). Returns the entry chosen.
async fn teach_an_answer(browser: &Client) -> anyhow::Result<String> {
    let question = "how do I pair my phone <b>now</b>";
    let input = browser.find(Locator::Id("question")).await?;
    input.send_keys(question).await?;
    browser.find(Locator::Id("qa-ask")).await?.click().await?;
    wait_text(browser, "qa-text", |shown| shown == question).await?;
    wait_enabled(browser, "qa-right").await?;
    ensure!(browser.find_all(Locator::Css("#qa b")).await?.is_empty(), "the question is shown as text");
    let candidates = browser.find_all(Locator::Css("#qa-candidates li")).await?;
    ensure!(candidates.len() == 10, "ten candidates, found {}", candidates.len());
    let third = &candidates[2];
    let entry = third.attr("data-entry").await?.context("a candidate names its entry")?;
    third.find(Locator::Css("button")).await?.click().await?;
    let expected = format!("this one → {entry}");
    wait_text(browser, "qa-feedback", |t| t.contains(&expected) || t.contains("right")).await?;
    ensure!(!browser.find(Locator::Id("qa-right")).await?.is_enabled().await?, "one feedback per answer");
    Ok(entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_teaches_the_assistant_through_the_page_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (on_path("chromium"), on_path("chromedriver")) else {
        let required = std::env::var("RLHF_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "RLHF_REQUIRE_BROWSER=1 and chromium or chromedriver is not on the PATH");
        eprintln!("skipped: chromium and chromedriver are not on the PATH (Debian: chromium chromium-driver)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let config = common::serve_config_with_answers(root.path());
    let service = Service::start::<AutodiffCpu>(&config, cpu_device()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.serve(listener, async {
        let _ = stopped.await;
    }));

    let driver = start_driver(&chromedriver).await.unwrap();
    let browser = open_browser(&driver, &chromium, &root.path().join("chromium-profile")).await.unwrap();
    let mut outcome = teach(&browser, &page).await.map(|()| String::new());
    if outcome.is_ok() {
        outcome = teach_an_answer(&browser).await;
    }
    if let Err(error) = &outcome {
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-failure.png");
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(&shot, png);
        }
        let _ = browser.clone().close().await;
        panic!("{error:#}\nscreenshot: {}", shot.display());
    }
    let chosen = outcome.unwrap();
    browser.close().await.unwrap();
    drop(driver);
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // The database holds exactly what was clicked: three interactions; a
    // right, a new intent, a correction, and its undo.
    let labels: Vec<String> = common::INTENTS.iter().map(|s| (*s).to_owned()).collect();
    let store = Store::open(&config.store_url, &labels, 300).await.unwrap();
    let texts: Vec<String> = store.history(10).await.unwrap().into_iter().rev().map(|r| r.interaction.text).collect();
    assert_eq!(texts, ["打开客厅的灯", "帮我叫一辆出租车", "<img src=x onerror=\"document.title='pwned'\">"]);
    let events: Vec<Event> = store.events_after(0).await.unwrap().into_iter().map(|e| e.event).collect();
    let [right, added, corrected, undo] = events.as_slice() else { panic!("four events: {events:?}") };
    assert!(matches!(right, Event::Feedback { interaction_id: 1, feedback, .. } if feedback == "right"), "{right:?}");
    assert_eq!(added, &Event::AddIntent { name: "book_taxi".into() });
    assert!(
        matches!(corrected, Event::Feedback { interaction_id: 2, feedback, corrected_intent: Some(c), .. }
            if feedback == "corrected" && c == "book_taxi"),
        "{corrected:?}"
    );
    assert_eq!(undo, &Event::Undo { undoes: 3 });
    // And the answer's feedback: the entry chosen (choosing the one answered is confirming it).
    let [(feedback, answer)] = &store.answer_feedback_after(0).await.unwrap()[..] else {
        panic!("one answer feedback")
    };
    assert_eq!(answer.text, "how do I pair my phone <b>now</b>");
    if answer.answered.as_deref() == Some(chosen.as_str()) {
        assert_eq!((feedback.feedback.as_str(), &feedback.chosen), ("right", &None));
    } else {
        assert_eq!((feedback.feedback.as_str(), feedback.chosen.as_deref()), ("this_one", Some(chosen.as_str())));
    }
    store.close().await;
}
