"""The admin's live "Active generations" page, in headless Chromium."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from generations.models import ApiToken, Generation
from tests.browser.harness import PASSWORD, api_create, log_in, make_user, screenshot, txt2img

pytestmark = pytest.mark.integration

ACTIVE_PATH = "/admin/lockngen/generation/active/"


def admin_log_in(page: Page, username: str) -> None:
    page.goto("/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def user_context(new_context, username: str) -> BrowserContext:
    context = new_context()
    page = context.new_page()
    log_in(page, username)
    page.close()
    return context


def test_only_staff_reach_the_active_page(live, new_context):
    make_user("mallory")
    context = user_context(new_context, "mallory")
    page = context.new_page()
    page.goto(ACTIVE_PATH)
    expect(page).to_have_url(re.compile(r"/admin/login/\?next="))
    response = context.request.get("/admin/lockngen/generation/active.json", max_redirects=0)
    assert response.status == 302 and "/admin/login/" in response.headers["location"]


def test_active_page_follows_generations_live(live, new_context):
    make_user("root", staff=True)
    make_user("erin")
    staff = new_context().new_page()
    admin_log_in(staff, "root")

    # Linked from the admin index and from the Generation changelist.
    staff.get_by_role("link", name="Active generations").click()
    expect(staff).to_have_url(re.compile(re.escape(ACTIVE_PATH) + "$"))
    staff.goto("/admin/lockngen/generation/")
    expect(staff.locator("#changelist-filter")).to_contain_text("By status")
    expect(staff.locator("#changelist-filter")).to_contain_text("By owner")
    staff.get_by_role("link", name="Active generations").click()
    expect(staff.get_by_role("heading", name="Active generations")).to_be_visible()
    expect(staff.locator("#active-connection")).to_have_attribute("data-state", "connected")
    expect(staff.locator("#active-rows")).to_contain_text("No queued or running generations.")

    # Another user's generation appears, moves, and goes away when it completes.
    erin = user_context(new_context, "erin")
    generation = api_create(erin, txt2img("watched by an admin", steps=70))
    row = staff.locator(f'#active-rows tr[data-id="{generation["id"]}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("erin")
    expect(row).to_contain_text(Generation.objects.get(id=generation["id"]).prompt_id)
    staff.wait_for_function(
        """id => {
            const bar = document.querySelector(`tr[data-id="${id}"] [role=progressbar]`);
            const v = bar ? Number(bar.getAttribute('aria-valuenow')) : 0;
            return v >= 20 && v < 90;
        }""",
        arg=generation["id"],
    )
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("KSampler · step")
    screenshot(staff, "admin-active")
    expect(row).to_have_count(0, timeout=20000)
    assert Generation.objects.get(id=generation["id"]).status == "completed"
    changelist = staff.context.new_page()
    changelist.goto("/admin/lockngen/generation/")
    expect(changelist.locator("#result_list")).to_contain_text("Completed")
    expect(changelist.locator("#result_list")).to_contain_text("erin")
    screenshot(changelist, "admin-changelist")
    changelist.close()

    # Cancel from the page: the cancel API, as staff, on someone else's generation.
    slow = api_create(erin, txt2img("cancelled by an admin", steps=150))
    row = staff.locator(f'#active-rows tr[data-id="{slow["id"]}"]')
    staff.wait_for_function(
        """id => {
            const bar = document.querySelector(`tr[data-id="${id}"] [role=progressbar]`);
            return bar && Number(bar.getAttribute('aria-valuenow')) > 0;
        }""",
        arg=slow["id"],
    )
    row.get_by_role("button", name=re.compile("^Cancel generation")).click()
    expect(row).to_have_count(0, timeout=15000)
    assert Generation.objects.get(id=slow["id"]).status == "cancelled"
    expect(staff.locator("#active-rows")).to_contain_text("No queued or running generations.")


def test_changelist_cancel_action(live, new_context):
    make_user("root", staff=True)
    make_user("gina")
    staff = new_context().new_page()
    admin_log_in(staff, "root")
    gina = user_context(new_context, "gina")
    slow = api_create(gina, txt2img("cancelled from the changelist", steps=150))
    deadline = time.monotonic() + 15
    while Generation.objects.get(id=slow["id"]).status != "running":
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.05)

    staff.goto("/admin/lockngen/generation/?status__exact=running")
    staff.locator(f'input.action-select[value="{slow["id"]}"]').check()
    staff.locator("select[name=action]").select_option("cancel_generations")
    staff.get_by_role("button", name="Go").click()
    expect(staff.locator(".messagelist")).to_contain_text("Asked ComfyUI to cancel 1 generation")
    deadline = time.monotonic() + 15
    while Generation.objects.get(id=slow["id"]).status != "cancelled":
        assert time.monotonic() < deadline, "never cancelled"
        time.sleep(0.05)


def test_api_tokens_listed_and_revoked(live, new_context):
    make_user("root", staff=True)
    owner = make_user("hank")
    token, _raw = ApiToken.issue(owner, name="laptop script")
    staff = new_context().new_page()
    admin_log_in(staff, "root")
    staff.goto("/admin/lockngen/apitoken/")
    expect(staff.locator("#result_list")).to_contain_text(token.prefix)
    expect(staff.locator("#result_list")).to_contain_text("laptop script")
    staff.locator(f'input.action-select[value="{token.pk}"]').check()
    staff.locator("select[name=action]").select_option("revoke_tokens")
    staff.get_by_role("button", name="Go").click()
    expect(staff.locator(".messagelist")).to_contain_text("Revoked 1 token(s).")
    token.refresh_from_db()
    assert token.revoked_at is not None
