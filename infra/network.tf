# A VPC of its own: the nodes have no public addresses (private cluster), reach Google APIs through
# Private Google Access and the internet (Docker Hub for KServe's and Prometheus' images, W&B)
# through Cloud NAT. Pods and Services get their own secondary ranges (VPC-native cluster).
resource "google_compute_network" "textclf" {
  name                    = var.cluster_name
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "nodes" {
  name                     = "${var.cluster_name}-nodes"
  network                  = google_compute_network.textclf.id
  region                   = var.region
  ip_cidr_range            = var.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  # VPC flow logs: who talked to whom, for incident response.
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing reaches the nodes from outside unless a rule allows it: GKE adds its own (control plane to
# nodes, health checks) above this one, which only makes the default explicit and logs what it drops.
resource "google_compute_firewall" "deny_ingress" {
  name          = "${var.cluster_name}-deny-ingress"
  network       = google_compute_network.textclf.id
  direction     = "INGRESS"
  priority      = 65534
  source_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "nat" {
  name    = "${var.cluster_name}-nat"
  network = google_compute_network.textclf.id
  region  = var.region
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.cluster_name}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
