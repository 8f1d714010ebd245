"""The browser fixtures work against the demo Hub: log in through the Hub's form."""


def test_login_reaches_hub_home(page, hub, login, shot):
    login(page, "admin")
    page.goto(f"{hub.url}/hub/home")
    assert page.locator("#start").count() == 1 or "Start My Server" in page.content()
    shot(page, "hub-home")
