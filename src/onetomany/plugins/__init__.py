"""Plugins: the hook specifications, the plugin manager, typed registries, plugin settings,
the source contract and the built-in plugins.

The manager is :class:`onetomany.plugins.manager.Plugins`; hooks are in
:mod:`onetomany.plugins.hookspecs`.
"""
