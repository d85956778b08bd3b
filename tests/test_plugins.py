import textwrap
import warnings

import pytest

from onetomany import Channel, DeliveryResult, Source, SyncResult, hookimpl
from onetomany.errors import PluginError, PluginImportError, RegistrationError
from onetomany.plugins.manager import PluginLoadWarning, Plugins
from onetomany.testing import RecordingChannel, make_plugins


def install_fake_distribution(root, *, dist, plugin, module, body):
    """Put a real distribution (dist-info + module) on sys.path, as pip would."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[onetomany]\n{plugin} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ONETOMANY_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("ONETOMANY_DISABLE_PLUGINS", raising=False)
    return tmp_path


BROKEN = """
raise RuntimeError("the vendor SDK is missing")
"""

GOOD = """
from onetomany import hookimpl
from onetomany.testing import RecordingChannel

class Sms(RecordingChannel):
    pass

@hookimpl
def onetomany_register_channels(register):
    register("fake_sms", Sms)
"""


def test_builtin_and_bundled_plugins_are_listed():
    infos = {info.name: info for info in Plugins().infos()}
    assert infos["inapp"].distribution == "onetomany"
    assert infos["outbox"].hooks == ("onetomany_register_channels",)
    assert infos["smtp"].distribution == "onetomany-smtp"
    assert infos["csv"].distribution == "onetomany-csv"
    assert all(info.status == "ok" for info in infos.values())


def test_entry_point_plugins_load_and_register(site):
    install_fake_distribution(
        site, dist="onetomany-fakesms", plugin="fakesms", module="fake_sms_mod", body=GOOD
    )
    plugins = Plugins()
    info = {i.name: i for i in plugins.infos()}["fakesms"]
    assert (info.distribution, info.version, info.status) == ("onetomany-fakesms", "1.2.3", "ok")
    registration = plugins.channels().get("fake_sms")
    assert registration.owner.plugin == "fakesms"
    assert registration.owner.distribution == "onetomany-fakesms"


def test_a_plugin_that_fails_to_import_is_a_warning_naming_it(site):
    install_fake_distribution(
        site, dist="onetomany-broken", plugin="broken", module="broken_mod", body=BROKEN
    )
    with pytest.warns(
        PluginLoadWarning, match='plugin "broken" from distribution "onetomany-broken"'
    ):
        plugins = Plugins()
    info = {i.name: i for i in plugins.infos()}["broken"]
    assert info.status == "broken"
    assert "the vendor SDK is missing" in info.error
    assert "smtp" in plugins.channels()  # the host runs on with the others


def test_strict_mode_makes_a_broken_plugin_an_error(site, monkeypatch):
    install_fake_distribution(
        site, dist="onetomany-broken", plugin="broken", module="broken_mod2", body=BROKEN
    )
    monkeypatch.setenv("ONETOMANY_STRICT_PLUGINS", "1")
    with pytest.raises(PluginImportError) as info:
        Plugins()
    assert info.value.plugin == "broken"
    assert info.value.distribution == "onetomany-broken"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugins_can_be_disabled_by_name(site, monkeypatch):
    install_fake_distribution(
        site, dist="onetomany-broken", plugin="broken", module="broken_mod3", body=BROKEN
    )
    monkeypatch.setenv("ONETOMANY_DISABLE_PLUGINS", "broken, smtp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plugins = Plugins()
    infos = {i.name: i.status for i in plugins.infos()}
    assert infos["broken"] == "disabled"
    assert infos["smtp"] == "disabled"
    assert "smtp" not in plugins.channels()


class _Twice:
    @hookimpl
    def onetomany_register_channels(self, register):
        register("recording", RecordingChannel)


def test_registering_a_name_twice_names_both_plugins():
    plugins = make_plugins(("copycat", _Twice()))
    with pytest.raises(RegistrationError) as info:
        plugins.channels()
    message = str(info.value)
    assert "'recording' is registered twice" in message
    assert "plugin 'testing'" in message
    assert "plugin 'copycat'" in message


class _WrongType:
    @hookimpl
    def onetomany_register_channels(self, register):
        register("notachannel", object)


def test_registering_the_wrong_type_names_the_plugin():
    plugins = make_plugins()
    plugins.register(_WrongType(), name="sloppy", distribution="onetomany-sloppy")
    with pytest.raises(
        RegistrationError, match=r"plugin 'sloppy' \(distribution 'onetomany-sloppy'\)"
    ):
        plugins.channels()


def test_a_misspelled_hook_is_caught_with_the_plugin_name(site):
    install_fake_distribution(
        site,
        dist="onetomany-typo",
        plugin="typo",
        module="typo_mod",
        body="""
        from onetomany import hookimpl

        @hookimpl
        def onetomany_register_channel(register):
            pass
        """,
    )
    with pytest.raises(PluginError, match="plugin 'typo' implements an unknown hook"):
        Plugins()


# -- one test per hook (a meta-test checks that each hook has one) ------------------------------


class _ChannelPlugin:
    class Pager(Channel):
        def send(self, message):
            return DeliveryResult(provider_message_id="p-1")

    @hookimpl
    def onetomany_register_channels(self, register):
        register("pager", self.Pager)


def test_hook_onetomany_register_channels():
    plugins = make_plugins(("pager", _ChannelPlugin()))
    registration = plugins.channels().get("pager")
    assert registration.value is _ChannelPlugin.Pager
    assert registration.owner.plugin == "pager"


class _SourcePlugin:
    class Billing(Source):
        def sync(self, *, cursor=None):
            return SyncResult(cursor="c")

    @hookimpl
    def onetomany_register_sources(self, register):
        register("billing", self.Billing)


def test_hook_onetomany_register_sources():
    plugins = make_plugins(("billing", _SourcePlugin()))
    assert plugins.sources().get("billing").value is _SourcePlugin.Billing
    assert "static" in plugins.sources()


class _FilterPlugin:
    @hookimpl
    def onetomany_register_template_filters(self, register):
        register("shout", lambda value: str(value).upper() + "!")


def test_hook_onetomany_register_template_filters():
    plugins = make_plugins(("shout", _FilterPlugin()))
    shout = plugins.template_filters().get("shout").value
    assert shout("hi") == "HI!"
