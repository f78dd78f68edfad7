"""The real Prometheus' metric_relabel keep/drop lists, as data (the lab's histories pass through them).

Source: stacks/monitoring/modules/monitoring/prometheus_chart_values.tpl @ 5d22b449 (ViktorBarzin/infra),
each rule with its line. Prometheus applies a job's `metric_relabel_configs` in order to every scraped
sample: a `drop` whose regex matches `__name__` removes it, a `keep` whose regex does not match removes
it; regexes are anchored (RE2, full match). A series dropped here is absent from the real Prometheus, so
the lab's Prometheus never holds it either: a gate that reads it sees nothing, in the lab as in production.

`prometheus-pushgateway` (PCV:515-523) and `prometheus` have no metric_relabel_configs: all kept.
ALERTS is written by the rule evaluator, not scraped.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

SOURCE = "stacks/monitoring/modules/monitoring/prometheus_chart_values.tpl @ 5d22b449"
# global scrape_interval: the chart's default 1m at 5d22b449; 2m codified 2026-05-21 08:32 (af6aa18b,
# PCV:245-246 there: "Memory id 559's earlier scrape-2m tuning was applied live") and kept since
# (PCV:397-398 @ 0cd4afb6). The bake era ran at 2 minutes.
SCRAPE_INTERVAL_SECONDS = 120


@dataclass(frozen=True)
class Rule:
    action: str  # "keep" | "drop"
    regex: str
    line: int  # PCV line @ 5d22b449

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.regex, name) is not None


# job -> metric_relabel_configs on __name__, in order
RULES: dict[str, list[Rule]] = {
    "kubernetes-nodes": [
        Rule("drop", '(storage_operation_duration_seconds|csi_operations_seconds|volume_operation_total_seconds|kubelet_image_pull_duration_seconds|kubelet_http_requests_duration_seconds|rest_client_rate_limiter_duration_seconds|rest_client_request_duration_seconds|rest_client_request_size_bytes|rest_client_response_size_bytes|kubelet_pod_worker_duration_seconds|kubelet_volume_metric_collection_duration_seconds|kubelet_cgroup_manager_duration_seconds)_bucket',
             377),
        Rule("drop", 'kubernetes_feature_enabled|kubelet_container_log_filesystem_used_bytes',
             380),
        Rule("keep", 'kubelet_volume_stats_capacity_bytes|kubelet_volume_stats_used_bytes|kubelet_volume_stats_inodes_used|kubelet_running_containers|kubelet_runtime_operations_errors_total|process_cpu_seconds_total|process_resident_memory_bytes|process_start_time_seconds|go_memstats_alloc_bytes|up',
             384),
    ],
    "kubernetes-nodes-cadvisor": [
        Rule("drop", 'container_tasks_state|container_memory_failures_total',
             406),
        Rule("drop", 'container_fs_.*|container_blkio_.*|container_pressure_.*|container_spec_.*|container_ulimits_soft|container_file_descriptors|container_threads|container_threads_max|container_sockets|container_processes|container_last_seen|machine_nvm_.*|machine_swap_bytes|machine_cpu_physical_cores|machine_cpu_sockets|container_network_(receive|transmit)_(errors|packets_dropped)_total|container_cpu_(load_average_10s|load_d_average_10s|system_seconds_total|user_seconds_total)|container_memory_(cache|failcnt|kernel_usage|mapped_file|max_usage_bytes|rss|swap|total_active_file_bytes|total_inactive_file_bytes)',
             409),
        Rule("keep", 'container_cpu_usage_seconds_total|container_cpu_cfs_throttled_seconds_total|container_memory_working_set_bytes|container_network_receive_bytes_total|container_network_transmit_bytes_total|container_oom_events_total|container_spec_memory_limit_bytes|container_start_time_seconds|machine_cpu_cores|machine_memory_bytes',
             413),
    ],
    "kubernetes-service-endpoints": [
        Rule("drop", 'kube_replicaset_.*|kube_pod_tolerations|kube_pod_status_scheduled|kube_deployment_status_condition|kube_pod_labels|kube_pod_created|kube_pod_owner|kube_pod_container_info|kube_pod_init_container_.*|kube_endpoint_.*|kube_service_.*|kube_configmap_.*|kube_secret_.*|kube_lease_.*|kube_ingress_.*|kube_networkpolicy_.*|kube_certificatesigningrequest_.*|kube_limitrange_.*|kube_mutatingwebhookconfiguration_.*|kube_validatingwebhookconfiguration_.*|kube_verticalpodautoscaler_.*|kube_clusterrole.*|kube_role.*|kube_poddisruptionbudget_.*|coredns_proxy_request_duration_seconds_bucket|node_filesystem_device_error|node_filesystem_readonly',
             464),
        Rule("keep", 'kube_cronjob_status_last_successful_time|kube_deployment_spec_replicas|kube_deployment_status_replicas_available|kube_deployment_status_replicas_unavailable|kube_job_status_failed|kube_job_status_start_time|kube_node_info|kube_node_status_allocatable|kube_node_status_capacity|kube_node_status_condition|kube_persistentvolumeclaim_status_phase|kube_pod_container_resource_limits|kube_pod_container_resource_requests|kube_pod_container_status_restarts_total|kube_pod_container_status_running|kube_pod_container_status_waiting_reason|kube_pod_info|kube_pod_status_phase|kube_pod_status_ready|kube_pod_status_reason|kube_pod_status_conditions|kube_resourcequota|kube_statefulset_replicas|kube_statefulset_status_replicas_ready|kube_daemonset_status_desired_number_scheduled|kube_daemonset_status_number_ready|kube_node_spec_unschedulable|node_cpu_seconds_total|node_disk_io_time_seconds_total|node_disk_read_bytes_total|node_disk_written_bytes_total|node_disk_reads_completed_total|node_disk_writes_completed_total|node_filesystem_avail_bytes|node_filesystem_size_bytes|node_filesystem_device_error|node_filesystem_readonly|node_hwmon_chip_names|node_hwmon_temp_celsius|node_load1|node_load15|node_load5|node_memory_MemAvailable_bytes|node_memory_MemTotal_bytes|node_memory_Buffers_bytes|node_memory_Cached_bytes|node_memory_MemFree_bytes|node_memory_SwapTotal_bytes|node_memory_SwapFree_bytes|node_network_receive_bytes_total|node_network_transmit_bytes_total|node_nfs_requests_total|node_uname_info|node_vmstat_oom_kill|coredns_cache_entries|coredns_cache_hits_total|coredns_cache_misses_total|coredns_dns_requests_total|coredns_dns_responses_total|coredns_forward_requests_total|coredns_forward_responses_total|coredns_build_info|process_cpu_seconds_total|process_resident_memory_bytes|process_start_time_seconds|up|pve_.*',
             468),
    ],
    "prometheus-pushgateway": [],
}
# where each job's scrape_config starts (PCV @ 5d22b449)
JOB_LINES = {"kubernetes-nodes": 357, "kubernetes-nodes-cadvisor": 386, "kubernetes-service-endpoints": 415,
             "prometheus-pushgateway": 515}


@functools.lru_cache(maxsize=4096)  # a rendered history asks this for every sample (~700,000): the rules are fixed
def kept(job: str, name: str) -> bool:
    """Would the real Prometheus store a sample named `name` scraped by `job`?"""
    for rule in RULES[job]:
        if rule.action == "drop" and rule.matches(name):
            return False
        if rule.action == "keep" and not rule.matches(name):
            return False
    return True


def why_dropped(job: str, name: str) -> str:
    """The rule that drops `name` in `job`, as a citation ("" if kept)."""
    for rule in RULES[job]:
        if (rule.action == "drop" and rule.matches(name)) or (rule.action == "keep" and not rule.matches(name)):
            return f"{job}: {rule.action} rule at {SOURCE.split(' @ ')[0]}:{rule.line} @ 5d22b449"
    return ""
