"""The REES composer: environments specified in a form, stored as versioned repositories.

``sections`` maps the form to REES files, ``validate`` checks them line by line,
``store`` keeps each spec as a git repository owned by the service, ``preview`` asks
repo2docker itself how it would build them, ``archive`` imports zips and folders, and
``service`` ties these together for the API (``tljh_rees.handlers.specs``).
"""
