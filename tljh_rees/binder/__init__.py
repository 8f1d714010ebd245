"""Binder links on this Hub: BinderHub's repository providers, its ``/v2/…`` launch page and
``/build/…`` event stream, so that a Binder link needs only this Hub's address."""
