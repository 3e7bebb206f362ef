"""What the services say suits every interface (a page, the command line, an API): no command-line flags."""

from __future__ import annotations

import pytest

from biobank.domain.errors import PermissionDeniedError
from biobank.imports.registry import KINDS
from biobank.services.auth import Action, require


def test_no_user_signed_in_names_no_flag():
    with pytest.raises(PermissionDeniedError) as refused:
        require(None, Action.enter)
    assert str(refused.value) == "enter: no user is signed in"
    assert refused.value.field == "user"


def test_no_import_template_help_names_a_command():
    for kind in KINDS.values():
        texts = [kind.help, *(column.help for column in kind.columns)]
        assert not [t for t in texts if "'biobank " in t or " --" in t], kind.name
