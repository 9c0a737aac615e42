terraform {
  required_version = ">= 1.6"
  # State in a versioned GCS bucket, never on a laptop: it holds every resource's attributes.
  # The bucket is created once by hand (infra/README.md) and named at init:
  #   terraform init -backend-config="bucket=$PROJECT_ID-tfstate"
  backend "gcs" {
    prefix = "textclf"
  }
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.20"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
