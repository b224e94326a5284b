from django.contrib import admin

from lockngen.models import Generation


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "owner", "progress", "current_node", "created_at", "prompt_id")
    list_filter = ("status", "owner")
    search_fields = ("id", "prompt_id")
    readonly_fields = ("id", "prompt_id", "seq", "created_at", "updated_at", "finished_at")
