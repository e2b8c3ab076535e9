"""The server's operations, as its faces (the v1 REST API in routes.py, the
dashboard in web/, the Infrastructure Manager's API in im/) call them: routing
glue only. The rules (who may see and operate what, quotas, the queue, what
may follow a destroy, what forget frees) live in services/tenancy.py; reading
in services/served.py; changing through the queue in services/requested.py.
A face only turns its protocol into these calls and their results into its
answers.
"""

from __future__ import annotations

from dodas.services.answers import public
from dodas.services.costs import of_form as form_cost
from dodas.services.costs import of_machines as held_cost
from dodas.services.autoscale_control import control_as as elastic_control
from dodas.services.costs import of_plan as cost
from dodas.services.listing import page as list_page
from dodas.services.offered import entry_unfit
from dodas.services.offered import filtered as catalogue_filter
from dodas.services.offered import for_caller as catalogue_for
from dodas.services.requested import (Ask, apply, create, destroy, forget, plan, plan_json, plan_new, reconfigure,
                                      remove_instances, scale, scale_many, scale_plan)
from dodas.services.served import (about, catalogue, catalogue_entry, deployment_counts, deployments, elastic, events,
                                   infra_name, log_events, machines, node_names, outputs, owner_of, providers,
                                   queue_depth, refresh, secret_text, sent_counts, settings, states, template,
                                   topology, view, work_view)
from dodas.services.tenancy import not_being_destroyed, operable, readable, status_of

__all__ = ["Ask", "about", "apply", "catalogue", "catalogue_entry", "catalogue_filter", "catalogue_for", "cost",
           "create", "deployment_counts", "deployments", "destroy", "elastic", "elastic_control", "entry_unfit",
           "events", "forget", "form_cost", "held_cost", "infra_name", "list_page", "log_events", "machines",
           "node_names", "not_being_destroyed", "operable", "outputs", "owner_of", "plan", "plan_json", "plan_new",
           "providers", "public", "queue_depth", "readable",
           "reconfigure", "refresh", "remove_instances", "scale", "scale_many", "scale_plan", "secret_text",
           "sent_counts", "settings", "states", "status_of", "template", "topology", "view", "work_view"]
