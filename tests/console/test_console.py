"""The web console end to end: headless Chromium (Debian's `chromium`, driven by Playwright) against a real
`coffer server` with `--console-address`.

Scenario: sign in as root, create a bucket, upload files (one small, one multipart), see them listed, download one
byte-exact, create a user with the readonly policy on the identity page, sign out, sign in as that user and fail to
upload with a visible error. A second scenario covers versioning (versions listed, an older one downloaded) and
the bucket-policy editor. Screenshots of the main pages go to $COFFER_ARTIFACTS (default
/tmp/coffer-console-artifacts).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("COFFER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("COFFER_ARTIFACTS", "/tmp/coffer-console-artifacts"))
TIMEOUT_MS = 30_000


def _python_conftest():
    """tests/python/conftest.py (CofferServer, credentials), loaded under its own name."""
    spec = importlib.util.spec_from_file_location("coffer_python_conftest", REPO / "tests" / "python" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _python_conftest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("console-server")
    srv = None
    for _ in range(3):  # the console's free port can be taken before the server binds it
        port = common.free_port()
        candidate = common.CofferServer(workdir, ["--console-address", f"127.0.0.1:{port}"])
        try:
            srv = candidate.start()
        except BaseException:
            if "console port" in candidate.log_tail(20):
                continue
            raise
        srv.console = f"http://127.0.0.1:{port}"
        break
    assert srv is not None, "could not start coffer server with a console port"
    try:
        yield srv
    finally:
        srv.stop_cleanly()


@pytest.fixture(scope="module")
def s3(server):
    return common.make_client(server.endpoint)


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (scripts/test console does)", pytrace=False)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    yield b
    b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console: {m.text}") if "Content Security Policy" in m.text else None)
    pg.problems = problems
    yield pg
    context.close()
    assert not problems, "\n".join(problems)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let charts and toasts settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, console: str, access_key: str, secret_key: str) -> None:
    page.goto(console + "/")
    expect(page.get_by_role("heading", name="Sign in to Coffer")).to_be_visible()
    page.get_by_label("Access key").fill(access_key)
    page.get_by_label("Secret key").fill(secret_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Buckets", exact=True)).to_be_visible()


def test_assets_are_served_with_a_strict_policy_and_everything_else_is_s3(server):
    with urllib.request.urlopen(server.console + "/") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        html = r.read().decode()
    assert "<script" in html and "type=\"module\"" in html and "onclick" not in html
    with urllib.request.urlopen(server.console + "/_console/js/app.js") as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
    with urllib.request.urlopen(server.console + "/health/live") as r:
        assert r.read() == b"OK"
    # An unsigned request for anything else is an anonymous S3 request, refused like on the S3 port.
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(server.console + "/some-bucket/key")
    assert denied.value.code == 403
    assert denied.value.headers["Content-Security-Policy"].startswith("sandbox")


def test_console_scenario(server, s3, page: Page, tmp_path):
    console = server.console
    bucket = "console-e2e"
    small = tmp_path / "report.bin"
    small.write_bytes(os.urandom(300 * 1024 + 17))  # above the inline threshold: erasure-coded on the blobnodes
    text = tmp_path / "notes.txt"
    text.write_text("Coffer console preview\nline two <b>not bold</b>\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(17 * 1024 * 1024 + 5))  # above 16 MiB: multipart, three parts

    # Sign in as root; only temporary credentials are kept by the browser.
    page.goto(console + "/")
    expect(page.get_by_label("Access key")).to_be_focused()
    shot(page, "login")
    sign_in(page, console, common.ACCESS_KEY, common.SECRET_KEY)
    stored = page.evaluate("JSON.stringify(sessionStorage)")
    assert common.SECRET_KEY not in stored and "sessionToken" in stored
    assert page.evaluate("localStorage.length") == 0

    # Create a bucket.
    page.get_by_role("button", name="Create bucket").click()
    page.get_by_label("Bucket name").fill("Bad_Name")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="lowercase")).to_be_visible()
    page.get_by_label("Bucket name").fill(bucket)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("link", name=bucket, exact=True)).to_be_visible()
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    # Upload three files into it and see them listed.
    page.get_by_role("link", name=bucket, exact=True).click()
    expect(page.get_by_role("heading", name=bucket)).to_be_visible()
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files([str(small), str(text), str(big)])
    uploads = page.get_by_role("list", name="Uploads")
    expect(uploads.get_by_text("Uploaded")).to_have_count(3, timeout=120_000)
    listing = page.locator(".listing")
    for name in ("report.bin", "notes.txt", "big.bin"):
        expect(listing.get_by_role("button", name=name, exact=True)).to_be_visible()
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == big.stat().st_size
    assert head["ETag"].strip('"').endswith("-3"), f"big.bin was not a 3-part multipart upload: {head['ETag']}"
    got = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(big.read_bytes()).digest()
    shot(page, "objects")

    # Download byte-exact (a presigned GET on the console's origin, streamed by the browser).
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download report.bin").click()
    download = download_info.value
    assert download.suggested_filename == "report.bin"
    saved = tmp_path / "downloaded.bin"
    download.save_as(saved)
    assert saved.read_bytes() == small.read_bytes()

    # Object details: metadata, a text preview (as text, never as HTML), tags, a share link.
    listing.get_by_role("button", name="notes.txt", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("pre.text-preview")).to_contain_text("line two <b>not bold</b>")
    dialog.get_by_role("button", name="Add tag").click()
    dialog.get_by_label("Tag key").fill("team")
    dialog.get_by_label("Tag value").fill("blue")
    dialog.get_by_role("button", name="Save tags").click()
    expect(page.get_by_role("status").get_by_text("Tags saved")).to_be_visible()
    assert s3.get_object_tagging(Bucket=bucket, Key="notes.txt")["TagSet"] == [{"Key": "team", "Value": "blue"}]
    dialog.get_by_role("button", name="Create share link").click()
    link = dialog.get_by_label("Share link").input_value()
    assert link.startswith(server.endpoint + f"/{bucket}/notes.txt?") and "X-Amz-Security-Token" in link
    with urllib.request.urlopen(link) as r:  # the link works from outside the browser, on the S3 port
        assert r.read() == text.read_bytes()
    shot(page, "object-details")
    dialog.get_by_role("button", name="Close").click()

    # Create a readonly user on the identity page.
    page.get_by_role("link", name="Identity").click()
    expect(page.get_by_role("heading", name="Identity")).to_be_visible()
    page.get_by_role("button", name="Create user").click()
    page.get_by_label("User name").fill("reader")
    page.get_by_label("readonly", exact=True).check()
    page.get_by_role("button", name="Create", exact=True).click()
    created = page.get_by_role("dialog", name="Access key created")
    expect(created).to_be_visible()
    reader_key = created.get_by_label("Access key").input_value()
    reader_secret = created.get_by_label("Secret key").input_value()
    assert reader_key and reader_secret
    created.get_by_role("button", name="Done").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("button", name="reader", exact=True))
    expect(row).to_contain_text("readonly")
    shot(page, "identity")
    page.get_by_role("link", name="Policies").click()
    expect(page.get_by_role("button", name="consoleAdmin", exact=True)).to_be_visible()
    shot(page, "policies")

    # The cluster page.
    page.get_by_role("link", name="Cluster").click()
    expect(page.get_by_text("Disks healthy")).to_be_visible()
    expect(page.get_by_role("table", name="Disks").get_by_text("healthy", exact=True)).to_have_count(6)
    shot(page, "cluster")

    # The bucket list on a phone-sized screen.
    page.get_by_role("link", name="Buckets").click()
    expect(page.get_by_role("row").filter(has_text=bucket)).to_contain_text("3")
    shot(page, "buckets")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "buckets-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # Sign out: the session is gone.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Coffer")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('coffer.session')") is None

    # Sign in as the readonly user: listing works, uploading fails visibly.
    sign_in(page, console, reader_key, reader_secret)
    expect(page.get_by_text(re.compile(r"reader"))).to_be_visible()
    page.get_by_role("link", name=bucket, exact=True).click()
    expect(page.locator(".listing").get_by_role("button", name="report.bin", exact=True)).to_be_visible()
    denied = tmp_path / "denied.txt"
    denied.write_text("should not land")
    page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(denied))
    failure = page.get_by_role("list", name="Uploads").get_by_role("alert")
    expect(failure).to_contain_text("AccessDenied")
    expect(page.locator("#alerts").get_by_text(re.compile("Upload of denied.txt failed"))).to_be_visible()
    shot(page, "readonly-upload-denied")
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="denied.txt")
    # The identity page says what a readonly user may not do, instead of failing silently.
    page.get_by_role("link", name="Identity").click()
    expect(page.locator(".error-box").filter(has_text="AccessDenied")).to_be_visible()


def test_console_versioning_and_bucket_policy(server, s3, page: Page, tmp_path):
    """Bucket settings: enable versioning, upload one key twice, list both versions, download the older one
    byte-exact, delete a version for good; a public-read bucket policy for a prefix set in the editor works for an
    unsigned GET, and an invalid one shows the server's MalformedPolicy message."""
    console = server.console
    bucket = "console-versions"
    s3.create_bucket(Bucket=bucket)
    sign_in(page, console, common.ACCESS_KEY, common.SECRET_KEY)

    # Versioning: never versioned shows Off; Enable turns it on.
    page.goto(f"{console}/#/buckets/{bucket}")
    expect(page.get_by_role("heading", name=f"Bucket {bucket}")).to_be_visible()
    state = page.locator("#versioning-state")
    expect(state).to_have_text("Off")
    expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
    page.get_by_role("button", name="Enable", exact=True).click()
    expect(state).to_have_text("Enabled")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    for gone in ("Versioning",):  # no longer shown as unavailable
        expect(page.locator(".unavailable").filter(has_text=gone)).to_have_count(0)
    for gone in ("Object lock", "CORS", "Lifecycle rules"):
        expect(page.locator(".unavailable").filter(has_text=gone)).to_have_count(0)
    expect(page.locator(".unavailable").filter(has_text="Quota")).to_be_visible()

    # Upload the same file twice from the object browser.
    page.get_by_role("link", name="Browse objects").click()
    expect(page.get_by_role("heading", name=bucket)).to_be_visible()
    expect(page.get_by_text("Versioning: enabled")).to_be_visible()
    doc = tmp_path / "doc.bin"
    first = os.urandom(200 * 1024 + 3)
    doc.write_bytes(first)
    file_input = page.locator("input[type=file]:not([webkitdirectory])")
    file_input.set_input_files(str(doc))
    uploads = page.get_by_role("list", name="Uploads")
    expect(uploads.get_by_text("Uploaded")).to_have_count(1, timeout=60_000)
    second = os.urandom(150 * 1024 + 11)
    doc.write_bytes(second)
    file_input.set_input_files(str(doc))
    expect(uploads.get_by_text("Uploaded")).to_have_count(2, timeout=60_000)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="doc.bin")["Versions"]
    assert len(versions) == 2
    older = next(v["VersionId"] for v in versions if not v["IsLatest"])
    newer = next(v["VersionId"] for v in versions if v["IsLatest"])

    # Show versions: both listed, the older one downloads byte-exact.
    page.get_by_label("Show versions").check()
    listing = page.locator(".listing")
    expect(listing.get_by_role("button", name=re.compile(r"^Download doc\.bin version "))).to_have_count(2)
    expect(listing.get_by_role("row").filter(has_text=newer)).to_contain_text("latest")
    shot(page, "object-versions")
    with page.expect_download() as download_info:
        listing.get_by_role("button", name=f"Download doc.bin version {older}").click()
    saved = tmp_path / "older.bin"
    download_info.value.save_as(saved)
    assert saved.read_bytes() == first

    # A delete in the versioned bucket leaves a marker; deleting a version permanently asks first.
    s3.delete_object(Bucket=bucket, Key="doc.bin")
    page.get_by_role("button", name="Refresh").click()
    expect(listing.get_by_role("row").filter(has_text="delete marker")).to_have_count(1)
    listing.get_by_role("button", name=f"Delete doc.bin version {older} permanently").click()
    page.get_by_role("dialog", name="Delete version permanently").get_by_role("button", name="Delete").click()
    expect(listing.get_by_role("button", name=re.compile(r"^Download doc\.bin version "))).to_have_count(1)
    remaining = s3.list_object_versions(Bucket=bucket, Prefix="doc.bin")
    assert [v["VersionId"] for v in remaining.get("Versions", [])] == [newer]
    assert len(remaining.get("DeleteMarkers", [])) == 1

    # Bucket policy: public read of public/ set in the editor, checked with an unsigned GET.
    s3.put_object(Bucket=bucket, Key="public/hello.txt", Body=b"hello, anonymous\n")
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"secret\n")
    page.goto(f"{console}/#/buckets/{bucket}")
    editor = page.get_by_label("Policy (JSON)")
    expect(page.get_by_text("This bucket has no policy.")).to_be_visible()
    expect(editor).to_have_value("")
    editor.fill("{ not json")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert").filter(has_text="Not valid JSON")).to_be_visible()
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/public/*",
        }],
    }
    editor.fill(json.dumps(policy, indent=2))
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status").get_by_text("Policy saved")).to_be_visible()
    expect(page.get_by_text("This bucket has a policy.")).to_be_visible()
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    body = None
    for _ in range(20):  # bucket owners and policies are cached for a moment
        try:
            with urllib.request.urlopen(f"{server.endpoint}/{bucket}/public/hello.txt") as r:
                body = r.read()
            break
        except urllib.error.HTTPError:
            time.sleep(0.25)
    assert body == b"hello, anonymous\n"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{server.endpoint}/{bucket}/private.txt")
    assert denied.value.code == 403
    toasts = page.locator("#status").get_by_role("button", name="Dismiss")
    while toasts.count():  # a clear view of the editor for the screenshot
        toasts.first.click()
    shot(page, "bucket-settings")

    # An invalid policy (another bucket's resource): the server's MalformedPolicy message, visibly.
    bad = dict(policy, Statement=[dict(policy["Statement"][0], Resource="arn:aws:s3:::someone-else/*")])
    editor.fill(json.dumps(bad))
    page.get_by_role("button", name="Save policy").click()
    error = page.get_by_role("alert").filter(has_text="MalformedPolicy")
    expect(error).to_be_visible()
    expect(error).to_contain_text("someone-else")
    expect(editor).to_have_attribute("aria-invalid", "true")
    shot(page, "bucket-policy-invalid")
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy

    # Delete the policy (after confirming): anonymous reads stop.
    page.get_by_role("button", name="Delete policy").click()
    page.get_by_role("dialog", name="Delete bucket policy").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("This bucket has no policy.")).to_be_visible()
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_policy(Bucket=bucket)


def test_console_signs_without_webcrypto_on_a_plain_http_origin(server, s3, playwright, tmp_path):
    """Over plain HTTP from another machine the page is not a secure context and has no WebCrypto; the console
    then signs with its own SHA-256. `console.test` resolves to the server but is not a trustworthy origin."""
    bucket = "console-plain-http"
    s3.create_bucket(Bucket=bucket)
    port = server.console.rsplit(":", 1)[1]
    origin = f"http://console.test:{port}"
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP console.test 127.0.0.1"],
    )
    try:
        page = b.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, origin, common.ACCESS_KEY, common.SECRET_KEY)
        assert page.evaluate("window.isSecureContext") is False
        assert page.evaluate("typeof (window.crypto && window.crypto.subtle)") == "undefined"
        page.get_by_role("link", name=bucket, exact=True).click()
        upload = tmp_path / "plain.txt"
        upload.write_bytes(b"signed without WebCrypto\n" * 1000)
        page.locator("input[type=file]:not([webkitdirectory])").set_input_files(str(upload))
        expect(page.get_by_role("list", name="Uploads").get_by_text("Uploaded")).to_be_visible()
        expect(page.locator(".listing").get_by_role("button", name="plain.txt", exact=True)).to_be_visible()
        assert not errors, errors
    finally:
        b.close()
    assert s3.get_object(Bucket=bucket, Key="plain.txt")["Body"].read() == upload.read_bytes()


def test_console_bucket_configurations(server, s3, page: Page):
    """Create a bucket with object lock from the dialog, then set its default retention, default encryption,
    public access block, CORS rules (JSON editor, invalid input shown) and a lifecycle rule on the settings
    page; each is checked through boto3."""
    console = server.console
    bucket = "console-configs"
    sign_in(page, console, common.ACCESS_KEY, common.SECRET_KEY)
    page.goto(f"{console}/#/buckets")
    page.get_by_role("button", name="Create bucket").click()
    dialog = page.get_by_role("dialog", name="Create bucket")
    dialog.get_by_label("Bucket name").fill(bucket)
    dialog.get_by_label("Object lock").check()
    expect(dialog.locator("input[name=bucket-versioning]")).to_be_checked()
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("link", name=bucket, exact=True)).to_be_visible()
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    page.goto(f"{console}/#/buckets/{bucket}")
    expect(page.locator("#lock-state")).to_contain_text("Object lock is on")
    page.get_by_label("Default retention mode").select_option("GOVERNANCE")
    page.get_by_label("Default retention (days)").fill("3")
    page.get_by_role("button", name="Save retention").click()
    expect(page.get_by_role("status").get_by_text("Default retention saved")).to_be_visible()
    retention = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": "GOVERNANCE", "Days": 3}

    page.get_by_label("Encrypt new objects with").select_option("AES256")
    page.get_by_role("button", name="Save encryption").click()
    expect(page.get_by_role("status").get_by_text("Default encryption saved")).to_be_visible()
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    page.get_by_label("Refuse public bucket policies").check()
    page.get_by_role("button", name="Save public access").click()
    expect(page.get_by_role("status").get_by_text("Public access settings saved")).to_be_visible()
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": False}

    cors = page.get_by_label("Rules (JSON)")
    cors.fill('[{"AllowedOrigins": ["https://app.example"]}]')
    page.get_by_role("button", name="Save CORS").click()
    expect(page.get_by_role("alert").filter(has_text="needs AllowedMethods")).to_be_visible()
    cors.fill(json.dumps([{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"],
                           "AllowedHeaders": ["*"], "MaxAgeSeconds": 600}]))
    page.get_by_role("button", name="Save CORS").click()
    expect(page.get_by_role("status").get_by_text("CORS rules saved")).to_be_visible()
    cors_rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert cors_rules[0]["AllowedOrigins"] == ["https://app.example"]
    assert sorted(cors_rules[0]["AllowedMethods"]) == ["GET", "PUT"]

    page.get_by_text("Add a rule").click()
    page.get_by_label("Rule id").fill("tmp-cleanup")
    page.get_by_label("Prefix", exact=True).fill("tmp/")
    page.get_by_label("Expire current versions after (days)").fill("7")
    page.get_by_label("Abort incomplete multipart uploads after (days)").fill("2")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status").get_by_text("Lifecycle rules saved")).to_be_visible()
    expect(page.locator(".rule-list")).to_contain_text("tmp-cleanup")
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["ID"] == "tmp-cleanup" and rule["Expiration"] == {"Days": 7}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    toasts = page.locator("#status").get_by_role("button", name="Dismiss")
    while toasts.count():
        toasts.first.click()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "bucket-configurations")
    page.get_by_role("button", name="Delete rule tmp-cleanup").click()
    page.get_by_role("dialog", name="Delete lifecycle rule").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No lifecycle rules.")).to_be_visible()
