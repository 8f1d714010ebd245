"""On-demand servers (seed 004): launching templates for users and for anonymous
visitors, warm pools of temporary users' servers, culling by a template's own timeouts,
and the caps that keep anonymous use within what the machine and the admin allow.

The rules of templates (who may register, launch, what a launch runs) are the catalog's
(``catalog/templates.py``); this package runs servers by them through the Hub's API.
"""
