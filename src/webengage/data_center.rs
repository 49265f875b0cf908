//! WebEngage's data centers and their API hosts (`WEBENGAGE_DATA_CENTER`).

use clap::ValueEnum;

/// Where the WebEngage account lives; it picks the API host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataCenter {
    Global,
    India,
    Ksa,
    /// Named by WebEngage's own migration client (`https://api.{dc}.webengage.com`).
    Eug,
}

impl DataCenter {
    pub const ALL: [DataCenter; 4] = [
        DataCenter::Global,
        DataCenter::India,
        DataCenter::Ksa,
        DataCenter::Eug,
    ];

    pub fn api_host(self) -> &'static str {
        match self {
            DataCenter::Global => "https://api.webengage.com",
            DataCenter::India => "https://api.in.webengage.com",
            DataCenter::Ksa => "https://api.ksa.webengage.com",
            DataCenter::Eug => "https://api.eug.webengage.com",
        }
    }

    /// The value `WEBENGAGE_DATA_CENTER` takes for this data center.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_data_center_has_its_exact_host() {
        let hosts: Vec<(String, &str)> = DataCenter::ALL
            .into_iter()
            .map(|dc| (dc.name(), dc.api_host()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("global".to_owned(), "https://api.webengage.com"),
                ("india".to_owned(), "https://api.in.webengage.com"),
                ("ksa".to_owned(), "https://api.ksa.webengage.com"),
                ("eug".to_owned(), "https://api.eug.webengage.com"),
            ]
        );
    }

    #[test]
    fn the_variable_names_each_data_center() {
        for dc in DataCenter::ALL {
            assert_eq!(DataCenter::from_str(&dc.name(), false), Ok(dc));
        }
        assert!(DataCenter::from_str("eu", false).is_err());
    }
}
