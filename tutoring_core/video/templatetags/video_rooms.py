"""``{% load video_rooms %}``: ``{% if session|room_joinable_by:request.user %}`` shows a room
link only to people the room lets in."""

from __future__ import annotations

from django import template

from tutoring_core.accounts.models import User
from tutoring_core.scheduling.data import SessionInfo
from tutoring_core.video import api

register = template.Library()


@register.filter
def room_joinable_by(info: SessionInfo, user: User) -> bool:
    return api.room_joinable(user=user, info=info)
