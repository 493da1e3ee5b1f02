"""Our admin for flags and cohorts. It replaces waffle's flag admin so every change goes through
flags.services (and so the audit log); saving never writes the model directly."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from flags import services
from flags.models import Cohort, CohortMember, Flag
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.core.selectors import audit_entries_for

if admin.site.is_registered(Flag):
    admin.site.unregister(Flag)  # waffle's own FlagAdmin writes without audit


def _audit_table(object_type: str, object_id: object) -> str:
    entries = audit_entries_for(object_type=object_type, object_id=str(object_id))[:25]
    if not entries:
        return "No changes recorded yet."
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
        (
            (
                e.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                e.actor_label,
                e.action,
                e.before,
                e.after,
                e.reason,
            )
            for e in entries
        ),
    )
    return format_html(
        "<table><tr><th>When</th><th>Who</th><th>Action</th><th>Before</th><th>After</th>"
        "<th>Reason</th></tr>{}</table>",
        rows,
    )


def _parse_rules(text: str) -> list[services.CohortRuleInput]:
    """One rule per line: `cohort-key: percentage`."""
    rules = []
    for number, line in enumerate(filter(None, (ln.strip() for ln in text.splitlines())), start=1):
        key, _, percentage = line.partition(":")
        try:
            rules.append(
                services.CohortRuleInput(cohort=key.strip(), percentage=Decimal(percentage.strip()))
            )
        except ArithmeticError:
            raise ValidationError(f"Line {number}: write 'cohort-key: percentage'.") from None
    return rules


class FlagAdminForm(forms.ModelForm):
    rollout_percentage = forms.DecimalField(min_value=0, max_value=100, decimal_places=2, initial=0)
    state = forms.ChoiceField(
        choices=[
            ("rules", "Use the rules"),
            ("killed", "Kill switch (off for everyone)"),
            ("forced", "Forced on"),
        ]
    )
    cohort_rules_text = forms.CharField(
        label="Cohort rules",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, first match wins: <code>cohort-key: percentage</code>",
    )
    excluded_units_text = forms.CharField(
        label="Excluded units",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line.",
    )
    reason = forms.CharField(required=False, help_text="Recorded in the audit log.")
    base_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Flag
        fields = ["name", "description", "owner", "stickiness", "salt", "tier"]

    # Form field -> the flag_update changes it stands for. Only what the person changed is sent,
    # so a field they did not touch cannot put back a value someone else changed meanwhile.
    CHANGES = {
        "description": ("description",),
        "owner": ("owner",),
        "stickiness": ("stickiness",),
        "salt": ("salt",),
        "tier": ("tier",),
        "rollout_percentage": ("rollout_percentage",),
        "state": ("kill_switch", "forced_on"),
        "cohort_rules_text": ("cohort_rules",),
        "excluded_units_text": ("excluded_units",),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        flag = self.instance
        self.fields["salt"].required = False
        if flag.pk:
            self.fields["name"].disabled = True
            self.initial["rollout_percentage"] = Decimal(flag.basis_points) / 100
            self.initial["state"] = {False: "killed", True: "forced"}.get(flag.everyone, "rules")
            self.initial["cohort_rules_text"] = "\n".join(
                f"{rule.cohort.key}: {Decimal(rule.basis_points) / 100}"
                for rule in flag.cohort_rules.select_related("cohort")
            )
            self.initial["excluded_units_text"] = "\n".join(flag.excluded_units)
            self.initial["base_version"] = flag.version

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        flag = self.instance
        if flag.pk:
            current = Flag.objects.filter(pk=flag.pk).values_list("version", flat=True).first()
            if data.get("base_version") != current:
                raise ValidationError(
                    f"This flag changed since you opened it (version {data.get('base_version')},"
                    f" now {current}). Reload the page and apply your edit again."
                )
        return data

    def clean_cohort_rules_text(self) -> list[services.CohortRuleInput]:
        rules = _parse_rules(self.cleaned_data["cohort_rules_text"])
        known = set(
            Cohort.objects.filter(key__in=[r.cohort for r in rules]).values_list("key", flat=True)
        )
        unknown = [rule.cohort for rule in rules if rule.cohort not in known]
        if unknown:
            raise ValidationError(f"Unknown cohort(s): {', '.join(unknown)}.")
        return rules

    def changes(self) -> dict[str, Any]:
        everything = self._all_changes()
        if not self.instance.pk:
            return everything
        wanted = {key for name in self.changed_data for key in self.CHANGES.get(name, ())}
        return {key: value for key, value in everything.items() if key in wanted}

    def _all_changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "description": data["description"],
            "owner": data["owner"],
            "stickiness": data["stickiness"],
            "salt": data["salt"],
            "tier": data["tier"],
            "rollout_percentage": data["rollout_percentage"],
            "kill_switch": data["state"] == "killed",
            "forced_on": data["state"] == "forced",
            "cohort_rules": data["cohort_rules_text"],
            "excluded_units": [
                u.strip() for u in data["excluded_units_text"].splitlines() if u.strip()
            ],
        }


class KillSwitchForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Why the flags are being killed."
    )


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    form = FlagAdminForm
    list_display = [
        "name",
        "percentage",
        "state",
        "tier",
        "owner",
        "archived",
        "version",
        "modified",
    ]
    list_filter = ["archived", "tier", "everyone"]
    search_fields = ["name", "description", "owner"]
    readonly_fields = ["version", "audit_history"]
    actions = ["kill_switch", "release_kill_switch", "archive"]
    fieldsets = [
        (None, {"fields": ["name", "description", "owner", "tier", "version", "base_version"]}),
        (
            "Rollout",
            {
                "fields": [
                    "state",
                    "rollout_percentage",
                    "cohort_rules_text",
                    "stickiness",
                    "salt",
                    "excluded_units_text",
                ]
            },
        ),
        ("Change", {"fields": ["reason"]}),
        ("History", {"fields": ["audit_history"]}),
    ]

    @admin.display(description="Rollout %")
    def percentage(self, flag: Flag) -> str:
        return f"{Decimal(flag.basis_points) / 100}%"

    @admin.display(description="State")
    def state(self, flag: Flag) -> str:
        return {False: "KILLED", True: "forced on"}.get(flag.everyone, "rules")

    @admin.display(description="Audit history")
    def audit_history(self, flag: Flag) -> str:
        return _audit_table("flags.flag", flag.pk) if flag.pk else "—"

    def save_model(
        self, request: HttpRequest, obj: Flag, form: FlagAdminForm, change: bool
    ) -> None:
        actor, reason = Actor.for_user(request.user), form.cleaned_data["reason"]
        if change:
            saved = services.flag_update(
                key=obj.name,
                actor=actor,
                changes=form.changes(),
                reason=reason,
                base_version=form.cleaned_data["base_version"],
            )
        else:
            saved = services.flag_create(key=obj.name, actor=actor, reason=reason, **form.changes())
        obj.pk = saved.pk

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:  # lost a race after the form's own check: nothing was saved
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def delete_model(self, request: HttpRequest, obj: Flag) -> None:
        services.flag_archive(
            key=obj.name, actor=Actor.for_user(request.user), reason="archived in the admin"
        )

    def has_delete_permission(self, request: HttpRequest, obj: Flag | None = None) -> bool:
        return False  # flags are archived, never deleted: their history stays readable

    @admin.action(
        description="Kill switch: turn selected flags off for everyone…", permissions=["change"]
    )
    def kill_switch(self, request: HttpRequest, queryset: QuerySet[Flag]) -> HttpResponse | None:
        form = KillSwitchForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for flag in queryset:
                services.flag_set_kill_switch(
                    key=flag.name,
                    killed=True,
                    actor=Actor.for_user(request.user),
                    reason=form.cleaned_data["reason"],
                )
            self.message_user(request, f"Killed {queryset.count()} flag(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "flags": queryset,
            "form": form,
            "title": "Kill switch",
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/flags/kill_switch.html", context)

    @admin.action(description="Release the kill switch (back to the rules)", permissions=["change"])
    def release_kill_switch(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        count = 0
        for flag in queryset.filter(everyone=False):
            services.flag_set_kill_switch(
                key=flag.name,
                killed=False,
                actor=Actor.for_user(request.user),
                reason="released in the admin",
            )
            count += 1
        self.message_user(request, f"Released {count} flag(s).", messages.SUCCESS)

    @admin.action(description="Archive selected flags", permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        for flag in queryset:
            services.flag_archive(
                key=flag.name, actor=Actor.for_user(request.user), reason="archived in the admin"
            )
        self.message_user(request, f"Archived {queryset.count()} flag(s).", messages.SUCCESS)


class CohortAdminForm(forms.ModelForm):
    add_units = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One per line."
    )
    remove_units = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One per line."
    )

    class Meta:
        model = Cohort
        fields = ["key", "name", "description", "match_attribute", "rules", "opt_in", "contacts"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["key"].disabled = True

    def clean_rules(self) -> list[dict[str, Any]]:
        try:
            return services.validate_cohort_rules(self.cleaned_data["rules"])
        except DomainError as exc:
            raise ValidationError(f"{exc.field}: {exc.message}") from None

    def clean_contacts(self) -> list[str]:
        contacts = self.cleaned_data["contacts"] or []
        validate = forms.EmailField().clean
        return [validate(address) for address in contacts]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    form = CohortAdminForm
    list_display = ["key", "name", "match_attribute", "opt_in", "members", "version"]
    search_fields = ["key", "name"]
    readonly_fields = ["version", "members", "audit_history"]

    @admin.display(description="Members / opted in")
    def members(self, cohort: Cohort) -> str:
        counts = {kind: 0 for kind in CohortMember.Kind.values}
        for kind in cohort.memberships.values_list("kind", flat=True):
            counts[kind] += 1
        return f"{counts['member']} / {counts['opt_in']}"

    @admin.display(description="Audit history")
    def audit_history(self, cohort: Cohort) -> str:
        return _audit_table("flags.cohort", cohort.pk) if cohort.pk else "—"

    def save_model(
        self, request: HttpRequest, obj: Cohort, form: CohortAdminForm, change: bool
    ) -> None:
        actor = Actor.for_user(request.user)
        fields = {
            name: form.cleaned_data[name]
            for name in services.COHORT_FIELDS
            if name in form.cleaned_data
        }
        if change:
            saved = services.cohort_update(key=obj.key, actor=actor, changes=fields)
        else:
            saved = services.cohort_create(key=obj.key, actor=actor, **fields)
        if _lines(form.cleaned_data["add_units"]):
            services.cohort_members_add(
                key=saved.key, units=_lines(form.cleaned_data["add_units"]), actor=actor
            )
        if _lines(form.cleaned_data["remove_units"]):
            services.cohort_members_remove(
                key=saved.key, units=_lines(form.cleaned_data["remove_units"]), actor=actor
            )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Cohort) -> None:
        services.cohort_delete(key=obj.key, actor=Actor.for_user(request.user))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bulk delete would bypass the services
        return actions
