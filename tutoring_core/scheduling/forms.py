"""Forms behind the scheduling pages. They parse what a person typed; every rule about
availability and profiles stays in services (availability_set, tutor_profile_set),
whose refusals the views put back next to the field they name."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any

from django import forms

WEEKDAY_CHOICES = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]
MIDNIGHT_END = "A rule must end after it starts; midnight at the end of the day is 24:00."
HHMM = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


@cache
def zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


def parse_hhmm(value: str) -> int:
    """Minutes after local midnight for "HH:MM"; "24:00" is the next midnight (1440)."""
    match = HHMM.match(value.strip())
    if not match:
        raise forms.ValidationError("Give a time as HH:MM, for example 09:30.")
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    if minutes > 1440:
        raise forms.ValidationError("Give a time from 00:00 to 24:00.")
    return minutes


def hhmm(minutes: int | None) -> str:
    if minutes is None:
        return ""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class TimeText(forms.CharField):
    """HH:MM as text: 24:00 (the end of the day) has no <input type=time> value."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 5)
        kwargs.setdefault(
            "widget",
            forms.TextInput(attrs={"inputmode": "numeric", "placeholder": "09:00", "autocomplete": "off"}),
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().clean(value)
        if not text:
            return None
        return parse_hhmm(text)


class WeeklyRuleForm(forms.Form):
    weekday = forms.TypedChoiceField(label="Day", choices=WEEKDAY_CHOICES, coerce=int)
    start = TimeText(label="From", required=False)
    end = TimeText(label="Until", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.cleaned_data.get("DELETE"):
            return data
        start, end = data.get("start"), data.get("end")
        if (start is None) != (end is None):
            missing = "start" if start is None else "end"
            self.add_error(missing, "Give both times, or leave both empty to drop the row.")
        elif end == 0:
            self.add_error("end", MIDNIGHT_END)
        return data


class OverrideForm(forms.Form):
    date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    unavailable = forms.BooleanField(label="Day off", required=False)
    start = TimeText(label="From", required=False)
    end = TimeText(label="Until", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.cleaned_data.get("DELETE"):
            return data
        if data.get("unavailable"):
            if data.get("start") is not None or data.get("end") is not None:
                self.add_error("start", "A day off has no hours: clear the times or untick Day off.")
        elif data.get("start") is None or data.get("end") is None:
            self.add_error(
                "start" if data.get("start") is None else "end", "Give the hours, or tick Day off."
            )
        elif data.get("end") == 0:
            self.add_error("end", MIDNIGHT_END)
        return data


class RowsFormSet(forms.BaseFormSet):  # type: ignore[type-arg]
    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove"


WeeklyRuleFormSet = forms.formset_factory(
    WeeklyRuleForm, formset=RowsFormSet, extra=2, can_delete=True, max_num=70
)
OverrideFormSet = forms.formset_factory(
    OverrideForm, formset=RowsFormSet, extra=1, can_delete=True, max_num=400
)


class AvailabilitySettingsForm(forms.Form):
    time_zone = forms.ChoiceField(label="Time zone", choices=zone_choices)
    buffer_before_min = forms.IntegerField(label="Free minutes before each session", min_value=0, initial=0)
    buffer_after_min = forms.IntegerField(label="Free minutes after each session", min_value=0, initial=0)
    min_notice_min = forms.IntegerField(label="Minimum notice (minutes)", min_value=0, initial=0)
    window_days = forms.IntegerField(label="Booking window (days ahead)", min_value=1, initial=90)
    daily_cap = forms.IntegerField(
        label="Most sessions per day", min_value=1, required=False, help_text="Leave empty for no limit."
    )


def _split_words(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class TutorProfileForm(forms.Form):
    subjects = forms.CharField(label="Subjects", required=False, help_text="Separate with commas.")
    grade_levels = forms.CharField(label="Grade levels", required=False, help_text="Separate with commas.")
    languages = forms.CharField(label="Languages", required=False, help_text="Separate with commas.")
    bio = forms.CharField(label="About the tutor", required=False, widget=forms.Textarea(attrs={"rows": 4}))
    time_zone = forms.ChoiceField(label="Time zone", choices=zone_choices)
    session_lengths = forms.CharField(
        label="Session lengths (minutes)", help_text="Separate with commas, for example 30, 45, 60."
    )
    is_active = forms.BooleanField(label="Takes bookings", required=False)
    school_ids = forms.MultipleChoiceField(
        label="Schools served", required=False, help_text="None chosen (and no classes): the whole district."
    )
    class_ids = forms.MultipleChoiceField(label="Classes served", required=False)

    def __init__(
        self, *args: Any, schools: list[tuple[str, str]], classes: list[tuple[str, str]], **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.fields["school_ids"].choices = schools  # type: ignore[attr-defined]
        self.fields["class_ids"].choices = classes  # type: ignore[attr-defined]

    def clean_session_lengths(self) -> list[int]:
        parts = _split_words(self.cleaned_data["session_lengths"])
        if not parts or not all(p.isdigit() for p in parts):
            raise forms.ValidationError(
                "Give whole numbers of minutes separated by commas, for example 30, 60."
            )
        return [int(p) for p in parts]

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "subjects": _split_words(data["subjects"]),
            "grade_levels": _split_words(data["grade_levels"]),
            "languages": _split_words(data["languages"]),
            "bio": data["bio"],
            "time_zone": data["time_zone"],
            "session_lengths": data["session_lengths"],
            "is_active": data["is_active"],
            "school_ids": list(data["school_ids"]),
            "class_ids": list(data["class_ids"]),
        }


class MakeTutorForm(forms.Form):
    person = forms.CharField(label="Email or username of the person", max_length=254)
