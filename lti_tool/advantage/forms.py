from __future__ import annotations

from decimal import Decimal

from django import forms


class ScoreEntryForm(forms.Form):
    """A teacher's or tutor's score for one student on one placed activity."""

    activity = forms.UUIDField()
    student = forms.UUIDField()
    score = forms.DecimalField(min_value=Decimal(0), max_digits=10, decimal_places=4)
    comment = forms.CharField(required=False, max_length=4000)
